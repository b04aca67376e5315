int main(void) {
    int y = <PROPOSED>{1, 2</PROPOSED><EXPECTED>{1, 2}</EXPECTED>;
    return y;
}
