function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>x + foo(1 2)</PROPOSED><REPAIR>x + foo(1, 2)</REPAIR><EXPECTED>x + foo(1, 2)</EXPECTED>;
  return y;
}
