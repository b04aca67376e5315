class Main {
    int main(int a, int b) {
        int y = foo(a[<PROPOSED>0], 1)</PROPOSED><EXPECTED>0], 1)</EXPECTED>;
        return y;
    }
}
