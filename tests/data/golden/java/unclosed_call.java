class Main {
    int main(int a, int b) {
        int y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>;
        return y;
    }
}
