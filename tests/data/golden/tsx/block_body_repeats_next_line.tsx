function main(a: number, b: number, x: number, offset: number): number {
  if (a) {
    <PROPOSED>f();
    g();</PROPOSED><EXPECTED>f();</EXPECTED><MODE>multi</MODE>
    g();
  }
  return y;
}
