def main(a, b, x, offset):
    y = foo(<PROPOSED>a, b)</PROPOSED><EXPECTED>a, b)</EXPECTED><REPLACED>)</REPLACED>
    return y
