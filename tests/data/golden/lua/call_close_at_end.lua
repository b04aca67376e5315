local function main(a, b, x, offset)
  local y = foo(<PROPOSED>a, b</PROPOSED><EXPECTED>a, b</EXPECTED>)
  return y
end
