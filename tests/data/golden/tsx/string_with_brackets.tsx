function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>;
  return y;
}
