function main(a, b, x, offset) {
  const y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>;
  return y;
}
