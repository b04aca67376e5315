function main(a: number, b: number, x: number, offset: number): number {
  const y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>;
  return y;
}
