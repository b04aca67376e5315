const char* kName = "stack <|cursor|> machine";
