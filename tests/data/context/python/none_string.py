def greet(name):
    return "Hello, <|cursor|>" + name
