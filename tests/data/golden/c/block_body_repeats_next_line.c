int main(void) {
    if (a) {
        <PROPOSED>f();
        g();</PROPOSED><EXPECTED>f();</EXPECTED><MODE>multi</MODE>
        g();
    }
    return y;
}
