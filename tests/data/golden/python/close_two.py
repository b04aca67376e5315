def main(a, b, x, offset):
    y = foo(a[<PROPOSED>0], 1)</PROPOSED><EXPECTED>0], 1)</EXPECTED>
    return y
