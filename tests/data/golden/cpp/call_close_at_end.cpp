int main() {
    auto y = foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>);
    return 0;
}
