int main() {
    auto y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>;
    return 0;
}
