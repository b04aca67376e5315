def main(a, b, x, offset):
    y = <PROPOSED>[1, 2</PROPOSED><EXPECTED>[1, 2]</EXPECTED>
    return y
