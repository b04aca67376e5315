function main(a: number, b: number, x: number, offset: number): number {
  const y = foo(a[<PROPOSED>0], 1)</PROPOSED><EXPECTED>0], 1)</EXPECTED>;
  return y;
}
