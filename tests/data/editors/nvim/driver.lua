-- Drives a real Neovim session through a scenario (DG_SCENARIO) and writes a JSON result to
-- DG_RESULT. Runs as a coroutine on timers so that typed keys (feedkeys) are processed by the
-- main loop between steps, exactly as when a user types.
local result = { scenario = os.getenv('DG_SCENARIO'), version = tostring(vim.version()), log = {} }
local out = os.getenv('DG_RESULT')

local function log(...)
  table.insert(result.log, table.concat(vim.tbl_map(tostring, { ... }), ' '))
end

local function finish()
  local f = assert(io.open(out, 'w'))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd('qall!')
end

local co
local function sleep(ms)
  vim.defer_fn(function()
    local ok, err = coroutine.resume(co)
    if not ok then
      result.error = tostring(err) .. '\n' .. debug.traceback(co)
      finish()
    end
  end, ms)
  coroutine.yield()
end

local function wait_for(what, cond, timeout_ms)
  local waited = 0
  while true do
    local v = cond()
    if v then
      return v
    end
    if waited >= timeout_ms then
      error('timed out waiting for ' .. what)
    end
    sleep(100)
    waited = waited + 100
  end
end

local function feed(keys, mode)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), mode or 'n', false)
end

local function buffer_text()
  return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, true), '\n') .. '\n'
end

local TIMEOUT = tonumber(os.getenv('DG_TIMEOUT_MS') or '120000')
-- cursor positions to try, {line (1-based), col (0-based byte, insert before it)}; the random-weight
-- model proposes nothing at some positions, so the scenarios move on to the next one
local POSITIONS = vim.json.decode(os.getenv('DG_POSITIONS') or '[]')

local function attached()
  return #vim.lsp.get_clients({ bufnr = 0, name = 'dg_lsp' }) > 0
end

local function model_ready()
  local client = vim.lsp.get_clients({ bufnr = 0, name = 'dg_lsp' })[1]
  local res = client and client:request_sync('workspace/executeCommand', { command = 'dg-lsp.status', arguments = {} }, 5000, 0)
  local r = res and res.result
  if r and (r.loaded or (r.error ~= nil and r.error ~= vim.NIL)) then
    return r
  end
end

local function go_insert(pos)
  feed('<Esc>')
  sleep(50)
  vim.api.nvim_win_set_cursor(0, { pos[1], 0 })
  local line = vim.api.nvim_get_current_line()
  if pos[2] >= #line then
    feed('A')
  else
    vim.api.nvim_win_set_cursor(0, { pos[1], pos[2] })
    feed('i')
  end
  wait_for('insert mode', function()
    return vim.api.nvim_get_mode().mode == 'i'
  end, 5000)
end

local scenarios = {}

-- Neovim 0.12+: ghost text appears as an extmark; the documented accept key (<Tab>) inserts it.
function scenarios.inline()
  result.before = buffer_text()
  local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  assert(ns, 'no nvim.lsp.inline_completion namespace (Neovim without inline completion?)')
  for _, pos in ipairs(POSITIONS) do
    go_insert(pos)
    local ok, marks = pcall(wait_for, 'ghost text', function()
      local m = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
      return #m > 0 and m or nil
    end, TIMEOUT)
    if ok then
      local mark = marks[1]
      local d = mark[4]
      local ghost = {}
      for _, chunk in ipairs(d.virt_text or {}) do
        table.insert(ghost, chunk[1])
      end
      local virt_lines = {}
      for _, vl in ipairs(d.virt_lines or {}) do
        local s = {}
        for _, chunk in ipairs(vl) do
          table.insert(s, chunk[1])
        end
        table.insert(virt_lines, table.concat(s))
      end
      result.extmark = { row = mark[2], col = mark[3], virt_text = table.concat(ghost), virt_lines = virt_lines }
      result.cursor = { pos[1], pos[2] }
      result.cursor_before = vim.api.nvim_win_get_cursor(0)
      feed('<Tab>', 'm') -- the plugin's accept key (a mapping: remap)
      wait_for('the accepted text', function()
        return buffer_text() ~= result.before
      end, 10000)
      sleep(300)
      result.after = buffer_text()
      -- ghost text left after accepting: only a new suggestion at the moved cursor may be there
      result.marks_after = {}
      for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, {})) do
        table.insert(result.marks_after, { row = m[2], col = m[3] })
      end
      result.cursor_after = vim.api.nvim_win_get_cursor(0)
      feed('<Esc>')
      return
    end
    log('no ghost text at', pos[1], pos[2])
  end
  error('no ghost text at any position')
end

-- Neovim 0.12+: with several candidates (automaticAlternatives), the plugin's <M-]> shows the
-- next one, and after the last the first again.
function scenarios.cycle()
  result.before = buffer_text()
  local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  assert(ns, 'no nvim.lsp.inline_completion namespace (Neovim without inline completion?)')
  local function ghost()
    local m = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })[1]
    if not m then
      return nil
    end
    local parts = {}
    for _, chunk in ipairs(m[4].virt_text or {}) do
      table.insert(parts, chunk[1])
    end
    for _, vl in ipairs(m[4].virt_lines or {}) do
      table.insert(parts, '\n')
      for _, chunk in ipairs(vl) do
        table.insert(parts, chunk[1])
      end
    end
    -- while cycling Neovim appends the candidate's place, " (2/3)": the candidate is what is before it
    return (table.concat(parts):gsub(' %(%d+/%d+%)$', ''))
  end
  for _, pos in ipairs(POSITIONS) do
    go_insert(pos)
    local ok, first = pcall(wait_for, 'ghost text', ghost, TIMEOUT)
    if ok then
      feed('<M-]>', 'm')
      local changed, second = pcall(wait_for, 'the next candidate', function()
        local g = ghost()
        return g ~= nil and g ~= first and g or nil
      end, 3000)
      if changed then
        -- on, until it wraps around to the first (at most 3 candidates; <M-[> reads as an escape
        -- sequence in a headless terminal, so the test only goes forward)
        local shown = { first, second }
        for _ = 1, 3 do
          local cur = ghost()
          feed('<M-]>', 'm')
          local ok2, g = pcall(wait_for, 'another candidate', function()
            local now = ghost()
            return now ~= nil and now ~= cur and now or nil
          end, 3000)
          if not ok2 then
            break
          end
          table.insert(shown, g)
          if g == first then
            break
          end
        end
        result.cursor = { pos[1], pos[2] }
        result.shown = shown
        result.after = buffer_text()
        feed('<Esc>')
        return
      end
      log('one candidate at', pos[1], pos[2])
    else
      log('no ghost text at', pos[1], pos[2])
    end
  end
  error('no position with two candidates')
end

-- Neovim 0.11: the infill as a completion item in the popup menu; <C-y> accepts it and
-- vim.lsp.completion applies its textEdit.
function scenarios.completion()
  result.before = buffer_text()
  for _, pos in ipairs(POSITIONS) do
    go_insert(pos)
    vim.lsp.completion.get() -- what the plugin maps to <C-Space>
    local ok, items = pcall(wait_for, 'completion menu', function()
      -- a headless Neovim has no UI to draw the menu: ask the completion state itself
      local info = vim.fn.complete_info({ 'items', 'mode', 'pum_visible' })
      return #info.items > 0 and info.items or nil
    end, TIMEOUT)
    if ok then
      local item = items[1]
      local lsp_item = vim.tbl_get(item, 'user_data', 'nvim', 'lsp', 'completion_item') or {}
      result.item = { word = item.word, abbr = item.abbr, menu = item.menu, kind = item.kind, lsp = lsp_item }
      result.cursor = { pos[1], pos[2] }
      feed('<C-y>')
      wait_for('the accepted item', function()
        return vim.fn.complete_info({ 'mode' }).mode == '' and buffer_text() ~= result.before
      end, 10000)
      sleep(500) -- CompleteDone applies the textEdit
      result.after = buffer_text()
      feed('<Esc>')
      return
    end
    log('no completion item at', pos[1], pos[2])
  end
  error('no completion item at any position')
end

-- Both: select characters in visual mode, run the rewrite-selection code action (the plugin's
-- <leader>dr mapping), the edit replaces exactly the selection.
function scenarios.rewrite()
  result.before = buffer_text()
  local sel = vim.json.decode(os.getenv('DG_SELECTION')) -- {line, start col, end col (inclusive)}, 0-based cols
  vim.api.nvim_win_set_cursor(0, { sel[1], sel[2] })
  feed('v')
  sleep(50)
  vim.api.nvim_win_set_cursor(0, { sel[1], sel[3] })
  sleep(50)
  vim.g.mapleader = '\\'
  feed('\\dr', 'm')
  wait_for('the rewrite', function()
    return buffer_text() ~= result.before
  end, TIMEOUT)
  sleep(300)
  result.after = buffer_text()
  result.mode = vim.api.nvim_get_mode().mode
end

co = coroutine.create(function()
  local path = os.getenv('DG_FILE')
  vim.cmd.edit(vim.fn.fnameescape(path))
  result.filetype = vim.bo.filetype
  wait_for('dg_lsp to attach', attached, 30000)
  result.status = wait_for('the model', model_ready, TIMEOUT)
  scenarios[result.scenario]()
  vim.cmd('silent write')
  finish()
end)
vim.schedule(function()
  local ok, err = coroutine.resume(co)
  if not ok then
    result.error = tostring(err)
    finish()
  end
end)
