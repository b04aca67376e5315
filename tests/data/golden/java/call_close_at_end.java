class Main {
    int main(int a, int b) {
        int y = foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>);
        return y;
    }
}
