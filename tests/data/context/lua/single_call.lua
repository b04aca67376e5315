local M = {}

function M.sum(xs)
  local total = 0
  for _, x in ipairs(xs) do
    total = total + <|cursor|>
  end
  return total
end

return M
