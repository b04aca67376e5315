int main() {
    auto y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>;
    return 0;
}
