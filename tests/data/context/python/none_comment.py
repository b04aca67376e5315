def greet(name):
    # say hi <|cursor|>
    return name
