int main() {
    auto y = foo(<PROPOSED>a, b)</PROPOSED><EXPECTED>a, b)</EXPECTED><REPLACED>)</REPLACED>;
    return 0;
}
