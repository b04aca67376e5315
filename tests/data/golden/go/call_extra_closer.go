package p

func main() {
	y := foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>
	_ = y
}
