local function main(a, b, x, offset)
  local y = <PROPOSED>x + foo(1 2)</PROPOSED><REPAIR>x + foo(1, 2)</REPAIR><EXPECTED>x + foo(1, 2)</EXPECTED>
  return y
end
