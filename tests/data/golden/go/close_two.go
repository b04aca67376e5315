package p

func main() {
	y := foo(a[<PROPOSED>0], 1)</PROPOSED><EXPECTED>0], 1)</EXPECTED>
	_ = y
}
