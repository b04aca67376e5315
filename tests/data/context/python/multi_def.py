class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        <|cursor|>

    def pop(self):
        return self.items.pop()
