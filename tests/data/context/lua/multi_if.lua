local function clamp(x, lo, hi)
  if x < lo then
    <|cursor|>
  end
  return x
end
