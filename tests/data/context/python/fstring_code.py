def greet(name):
    return f"Hello {na<|cursor|>}"
