import os
import sys


def load(path):
    """Read a file."""
    with open(path) as fh:
        data = fh.read()
    result = process(
        data,
        strict=True,
    )
    return <|cursor|>


def process(data, strict=False):
    if strict:
        return data.strip()
    return data
