int main() {
    auto y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>;
    return 0;
}
