def main(a, b, x, offset):
    y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>
    return y
