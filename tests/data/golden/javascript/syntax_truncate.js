function main(a, b, x, offset) {
  const y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>);
  return y;
}
