function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>;
  return y;
}
