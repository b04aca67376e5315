class Shape:
    def __init__(self, width, height):
        self.width = width
        self.height = height


def area(shape):
    width = shape.width
    height = shape.height
    return width * height


def perimeter(shape):
    width = shape.width
    pass
    return 2 * (width + height)
