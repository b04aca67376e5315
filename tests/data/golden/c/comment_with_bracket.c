int main(void) {
    int y = 1; <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
    return y;
}
