def area(r):
    <|cursor|>
    pass
