class Main {
    int main(int a, int b) {
        int y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>;
        return y;
    }
}
