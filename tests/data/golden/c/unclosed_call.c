int main(void) {
    int y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>;
    return y;
}
