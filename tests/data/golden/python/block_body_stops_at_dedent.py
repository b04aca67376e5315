def main(a, b, x, offset):
    if a:
        <PROPOSED>a = 1
        b = 2
    h = 3</PROPOSED><EXPECTED>a = 1
        b = 2</EXPECTED><MODE>multi</MODE>
    return y
