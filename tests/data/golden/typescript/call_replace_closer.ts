function main(a: number, b: number, x: number, offset: number): number {
  const y = foo(<PROPOSED>a, b)</PROPOSED><EXPECTED>a, b)</EXPECTED><REPLACED>)</REPLACED>;
  return y;
}
