local function main(a, b, x, offset)
  local y = foo(a[<PROPOSED>0], 1)</PROPOSED><EXPECTED>0], 1)</EXPECTED>
  return y
end
