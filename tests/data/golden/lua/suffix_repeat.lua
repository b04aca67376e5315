local function main(a, b, x, offset)
  local y = <PROPOSED>compute(a) + offset</PROPOSED><EXPECTED>compute(a)</EXPECTED> + offset
  return y
end
