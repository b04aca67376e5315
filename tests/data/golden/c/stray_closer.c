int main(void) {
    int y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>;
    return y;
}
