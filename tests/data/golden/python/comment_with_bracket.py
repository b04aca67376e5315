def main(a, b, x, offset):
    y = 1 <PROPOSED># see (a</PROPOSED><EXPECTED># see (a</EXPECTED>
    return y
