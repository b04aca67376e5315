function main(a, b, x, offset) {
  if (a) {
    <PROPOSED>f();
  }
  g();</PROPOSED><EXPECTED>f();</EXPECTED><MODE>multi</MODE>
  }
  return y;
}
