int main() {
    if (a) {
        <PROPOSED>f();
        g();</PROPOSED><EXPECTED>f();</EXPECTED><MODE>multi</MODE>
        g();
    }
    return 0;
}
