function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>;
  return y;
}
