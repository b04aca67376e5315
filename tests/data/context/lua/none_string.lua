local greeting = "hello <|cursor|> world"
