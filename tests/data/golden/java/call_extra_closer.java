class Main {
    int main(int a, int b) {
        int y = foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>;
        return y;
    }
}
