local function main(a, b, x, offset)
  if a then
    <PROPOSED>f()
    g()
  end
  h = 3</PROPOSED><EXPECTED>f()
    g()</EXPECTED><MODE>multi</MODE>
  end
  return y
end
