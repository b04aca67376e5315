function main(a, b, x, offset) {
  const y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>;
  return y;
}
