local function main(a, b, x, offset)
  local y = <PROPOSED>foo(a</PROPOSED><EXPECTED>foo(a)</EXPECTED>
  return y
end
