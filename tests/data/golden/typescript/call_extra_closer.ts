function main(a: number, b: number, x: number, offset: number): number {
  const y = foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>;
  return y;
}
