def main(a, b, x, offset):
    y = foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>
    return y
