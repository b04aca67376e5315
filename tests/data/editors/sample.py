import os


def add(a, b):
    return a + b


def greet(name):
    message = "hello " + name
    print(message)
    return message


total = add(1, 2)
print(greet("world"))
