package main

type Config struct {
	Name    string
	Retries int
}

func build() Config {
	c := Config{
		Name:    "x",
		Retries: 3,
	}
	c.Retries = <|cursor|>
	return c
}
