class Counter {
  constructor() {
    this.count = 0;
  }

  increment() {
    <|cursor|>
  }
}
