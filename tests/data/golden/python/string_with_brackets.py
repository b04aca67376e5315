def main(a, b, x, offset):
    y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>
    return y
