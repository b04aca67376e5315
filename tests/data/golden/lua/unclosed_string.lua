local function main(a, b, x, offset)
  local y = <PROPOSED>"abc</PROPOSED><EXPECTED>"abc"</EXPECTED>
  return y
end
