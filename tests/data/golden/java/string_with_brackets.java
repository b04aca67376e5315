class Main {
    int main(int a, int b) {
        int y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>;
        return y;
    }
}
