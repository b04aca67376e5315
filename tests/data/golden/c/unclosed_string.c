int main(void) {
    int y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>;
    return y;
}
