package p

func main() {
	y := <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>
	_ = y
}
