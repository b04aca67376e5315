int main() {
    auto y = 1; <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
    return 0;
}
