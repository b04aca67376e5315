package p

func main() {
	y := <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>
	_ = y
}
