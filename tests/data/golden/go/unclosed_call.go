package p

func main() {
	y := <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>
	_ = y
}
