package main

import "fmt"

func sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += <|cursor|>
	}
	return total
}

func main() {
	fmt.Println(sum([]int{1, 2, 3}))
}
