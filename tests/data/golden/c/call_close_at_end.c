int main(void) {
    int y = foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>);
    return y;
}
