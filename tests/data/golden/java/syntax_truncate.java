class Main {
    int main(int a, int b) {
        int y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>);
        return y;
    }
}
