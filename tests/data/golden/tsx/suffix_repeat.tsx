function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset;
  return y;
}
