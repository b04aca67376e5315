function main(a, b, x, offset) {
  const y = <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset;
  return y;
}
