function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>[1, 2</PROPOSED><EXPECTED>[1, 2]</EXPECTED>;
  return y;
}
