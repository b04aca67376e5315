class Main {
    int main(int a, int b) {
        int y = <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset;
        return y;
    }
}
