package p

func main() {
	y := <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>
	_ = y
}
