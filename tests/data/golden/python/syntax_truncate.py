def main(a, b, x, offset):
    y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>)
    return y
