function main(a: number, b: number, x: number, offset: number): number {
  const y = 1; <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
  return y;
}
