package p

func main() {
	y := <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset
	_ = y
}
