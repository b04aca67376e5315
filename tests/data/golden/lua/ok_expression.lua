local function main(a, b, x, offset)
  local y = <PROPOSED>a + b</PROPOSED><EXPECTED>a + b</EXPECTED>
  return y
end
