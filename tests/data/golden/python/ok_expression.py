def main(a, b, x, offset):
    y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>
    return y
