export class Queue<T> {
  private items: T[] = [];

  enqueue(item: T): void {
<|cursor|>
  }
}
