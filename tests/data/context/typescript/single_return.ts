interface Point {
  x: number;
  y: number;
}

export function dist(a: Point, b: Point): number {
  const dx = a.x - b.x;
  const dy = a.y - b.y;
  return Math.sqrt(<|cursor|>);
}
