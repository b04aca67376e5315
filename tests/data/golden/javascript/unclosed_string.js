function main(a, b, x, offset) {
  const y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>;
  return y;
}
