const msg = `hello <|cursor|> world`;
