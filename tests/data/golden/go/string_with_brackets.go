package p

func main() {
	y := <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>
	_ = y
}
