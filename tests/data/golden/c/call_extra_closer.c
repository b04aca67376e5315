int main(void) {
    int y = foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>;
    return y;
}
