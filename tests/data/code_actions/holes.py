import math


def summarize(values):
    total = 0
    for v in values:
        pass
    # TODO: compute the mean
    ...


def untouched(x):
    return math.sqrt(x)
