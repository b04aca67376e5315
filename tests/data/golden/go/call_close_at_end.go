package p

func main() {
	y := foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>)
	_ = y
}
