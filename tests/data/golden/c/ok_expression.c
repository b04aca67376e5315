int main(void) {
    int y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>;
    return y;
}
