package main

func reverse(s string) string {
	<|cursor|>
}
