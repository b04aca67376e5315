def main(a, b, x, offset):
    y = <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset
    return y
