def main(a, b, x, offset):
    y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>
    return y
