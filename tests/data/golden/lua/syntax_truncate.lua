local function main(a, b, x, offset)
  local y = foo(a<PROPOSED>, b = = c</PROPOSED><EXPECTED>, b</EXPECTED>)
  return y
end
