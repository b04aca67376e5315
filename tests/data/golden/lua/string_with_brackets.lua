local function main(a, b, x, offset)
  local y = <PROPOSED>"(["</PROPOSED><EXPECTED>"(["</EXPECTED>
  return y
end
