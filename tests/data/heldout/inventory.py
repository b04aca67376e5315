"""A small inventory: items, counts and a report.

Used by tests/test_heldout.py as a held-out fixture (hand-written for the tests).
"""

from dataclasses import dataclass, field

# prices are in cents
DEFAULT_PRICE = 100


@dataclass
class Item:
    name: str
    count: int = 0
    price: int = DEFAULT_PRICE
    tags: list[str] = field(default_factory=list)

    def total(self) -> int:
        """Value of the stock of this item."""
        return self.count * self.price

    def restock(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.count += amount


class Inventory:
    def __init__(self):
        self.items: dict[str, Item] = {}

    def add(self, item: Item) -> None:
        if item.name in self.items:
            self.items[item.name].restock(item.count)
        else:
            self.items[item.name] = item

    def value(self) -> int:
        total = 0
        for item in self.items.values():
            total += item.total()
        return total

    def report(self) -> str:
        lines = []
        for name in sorted(self.items):
            item = self.items[name]
            lines.append(f"{name}: {item.count} x {item.price}")
        return "\n".join(lines)
