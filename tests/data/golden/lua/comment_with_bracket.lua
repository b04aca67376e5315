local function main(a, b, x, offset)
  local y = 1 <PROPOSED>-- see (a</PROPOSED><EXPECTED>-- see (a</EXPECTED>
  return y
end
