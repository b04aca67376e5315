local function main(a, b, x, offset)
  local y = <PROPOSED>{1, 2</PROPOSED><EXPECTED>{1, 2}</EXPECTED>
  return y
end
