function main(a, b, x, offset) {
  const y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>;
  return y;
}
