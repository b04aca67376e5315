import os


def read_config(path):
    with open(path) as f:
        data = f.read()
    return data


def add(a, b):
    return a + b


class Greeter:
    def __init__(self, name):
        self.name = name

    def greet(self):
        message = "hello " + self.name
        return message


def main():
    total = add(1, 2)
    greeter = Greeter("world")
    print(greeter.greet(), total)


if __name__ == "__main__":
    main()
