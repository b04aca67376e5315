function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>;
  return y;
}
