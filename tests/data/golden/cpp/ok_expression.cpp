int main() {
    auto y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>;
    return 0;
}
