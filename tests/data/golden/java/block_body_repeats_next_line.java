class Main {
    int main(int a, int b) {
        if (a > 0) {
        	<PROPOSED>f();
        	g();</PROPOSED><EXPECTED>f();</EXPECTED><MODE>multi</MODE>
        	g();
        }
        return y;
    }
}
