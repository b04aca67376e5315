int main() {
    auto y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>;
    return 0;
}
