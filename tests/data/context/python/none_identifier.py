def greet(name):
    return na<|cursor|>me.upper()
