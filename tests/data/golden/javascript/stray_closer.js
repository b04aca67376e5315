function main(a, b, x, offset) {
  const y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>;
  return y;
}
