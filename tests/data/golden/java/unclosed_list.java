class Main {
    int main(int a, int b) {
        int y = <PROPOSED>new int[]{1, 2</PROPOSED><EXPECTED>new int[]{1, 2}</EXPECTED>;
        return y;
    }
}
