class Main {
    int main(int a, int b) {
        int y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>;
        return y;
    }
}
