int main() {
    auto y = <PROPOSED>std::vector<int>{1, 2</PROPOSED><EXPECTED>std::vector<int>{1, 2}</EXPECTED>;
    return 0;
}
