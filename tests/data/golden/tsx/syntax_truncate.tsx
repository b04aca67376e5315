function main(a: number, b: number, x: number, offset: number): number {
  const y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>);
  return y;
}
