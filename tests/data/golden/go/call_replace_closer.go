package p

func main() {
	y := foo(<PROPOSED>a, b)</PROPOSED><EXPECTED>a, b)</EXPECTED><REPLACED>)</REPLACED>
	_ = y
}
