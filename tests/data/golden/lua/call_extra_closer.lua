local function main(a, b, x, offset)
  local y = foo(<PROPOSED>a, b) + 1)</PROPOSED><EXPECTED>a, b) + 1</EXPECTED>
  return y
end
