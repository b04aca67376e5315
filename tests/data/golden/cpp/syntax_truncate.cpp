int main() {
    auto y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>);
    return 0;
}
