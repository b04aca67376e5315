local function main(a, b, x, offset)
  local y = <PROPOSED>)x</PROPOSED><EXPECTED></EXPECTED>
  return y
end
