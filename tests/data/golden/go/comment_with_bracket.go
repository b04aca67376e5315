package p

func main() {
	y := 1 <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
	_ = y
}
