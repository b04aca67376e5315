package main

var usage = `usage: tool [flags]
  -v  verbose <|cursor|>
`
