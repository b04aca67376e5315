function main(a, b, x, offset) {
  const y = foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>);
  return y;
}
