"""Helpers for human-readable sizes."""

UNITS = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text):
    """'10k' -> 10240, '3m' -> 3145728, '12' -> 12."""
    text = text.strip().lower()
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def format_size(n):
    for unit, scale in sorted(UNITS.items(), key=lambda kv: -kv[1]):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)
