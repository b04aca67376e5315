def main(a, b, x, offset):
    y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>
    return y
