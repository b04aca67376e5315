class Main {
    int main(int a, int b) {
        int y = 1; <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
        return y;
    }
}
