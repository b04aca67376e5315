package p

func main() {
	y := foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>)
	_ = y
}
