"""Terminal colours."""

RED, GREEN, RESET = "\x1b[31m", "\x1b[32m", "\x1b[0m"


def paint(text, colour):
    return f"{colour}{text}{RESET}"
