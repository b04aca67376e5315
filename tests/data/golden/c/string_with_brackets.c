int main(void) {
    int y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>;
    return y;
}
