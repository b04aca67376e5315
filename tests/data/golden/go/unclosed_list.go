package p

func main() {
	y := <PROPOSED>[]int{1, 2</PROPOSED><EXPECTED>[]int{1, 2}</EXPECTED>
	_ = y
}
