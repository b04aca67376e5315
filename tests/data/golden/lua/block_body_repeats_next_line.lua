local function main(a, b, x, offset)
  if a then
    <PROPOSED>f()
    g()</PROPOSED><EXPECTED>f()</EXPECTED><MODE>multi</MODE>
    g()
  end
  return y
end
