function main(a, b, x, offset) {
  const y = 1; <PROPOSED>// see (a</PROPOSED><EXPECTED>// see (a</EXPECTED>
  return y;
}
