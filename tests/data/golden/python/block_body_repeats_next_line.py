def main(a, b, x, offset):
    if a:
        <PROPOSED>a = 1
        b = 2</PROPOSED><EXPECTED>a = 1</EXPECTED><MODE>multi</MODE>
        b = 2
    return y
