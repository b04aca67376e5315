--- dg-lsp for Neovim (0.11+): code infill from a local diffusion model.
---
---   require('dg_lsp').setup({ settings = { maxTokens = 48 } })
---
--- 0.12+: ghost text (vim.lsp.inline_completion); <Tab> accepts it (a plain <Tab> otherwise),
---        <M-]> / <M-[> cycle. The infill is also a completion item (<C-Space> or <C-x><C-o>).
--- 0.11:  no inline completion in Neovim: the infill comes as a completion item, shown as you
---        type after . ( [ { , : = and space, and on <C-Space>; <C-y> accepts it.
--- Both:  :DgLspRewrite (on a visual selection), :DgLspFillHoles, :DgLspReloadModel, :DgLspStatus,
---         :DgLspTune, :DgLspTuneCancel.
local M = {}

M.REWRITE_KIND = 'refactor.rewrite.dgLsp.rewriteSelection'
M.FILL_KIND = 'refactor.rewrite.dgLsp.fillHoles'

--- Neovim filetypes dg-lsp has a grammar for (grammars/registry.json in the server).
M.filetypes = {
  'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'rust', 'go',
  'c', 'cpp', 'java', 'lua', 'sh', 'bash', 'zsh', 'json', 'jsonc',
}

M.defaults = {
  --- The server command line; `dg-lsp` is looked up on PATH.
  cmd = { 'dg-lsp', '--stdio' },
  filetypes = M.filetypes,
  --- dg-lsp settings (camelCase keys, as in the server's settings.py): model, device, dtype,
  --- maxTokens, contextTokens, denoisingSteps, languages, inlineCompletion, completionItems,
  --- multiline, threads, seed, trustRemoteCode, memory ("auto"/"off": the token memory of the
  --- open file, other open buffers and the workspace), memoryDocument, memoryOpenDocuments,
  --- memoryWorkspace, memoryWorkspaceTokens, ... Unset keys keep the server's defaults.
  settings = {},
  --- Ghost text on Neovim 0.12+ (ignored on 0.11, which has no inline completion).
  inline = true,
  --- Completion items: 'auto' (shown as you type; the default on 0.11), 'manual' (only on
  --- <C-Space> / <C-x><C-o>; the default on 0.12+ where ghost text is on), or false.
  completion = nil,
  --- Keys; set one to false to leave it unmapped.
  keys = {
    accept = '<Tab>', -- insert mode, 0.12+: accept the ghost text (falls back to a plain <Tab>)
    next = '<M-]>', -- insert mode, 0.12+: next / previous candidate
    prev = '<M-[>',
    complete = '<C-Space>', -- insert mode: ask for the completion item now
    rewrite = '<leader>dr', -- visual mode: rewrite the selection
    fill = '<leader>df', -- normal mode: fill the holes (..., pass, TODO) of the function
  },
}

local function has_inline()
  return vim.lsp.inline_completion ~= nil and vim.fn.has('nvim-0.12') == 1
end

--- Run the dg-lsp code action of `kind` and apply it (visual mode: on the selection).
function M.code_action(kind, range)
  vim.lsp.buf.code_action({
    context = { only = { kind }, diagnostics = {} },
    range = range,
    apply = true,
    filter = function(action)
      return action.kind == kind
    end,
  })
end

function M.rewrite_selection(range)
  M.code_action(M.REWRITE_KIND, range)
end

function M.fill_holes()
  M.code_action(M.FILL_KIND)
end

local function exec(command, cb)
  local clients = vim.lsp.get_clients({ name = 'dg_lsp' })
  if #clients == 0 then
    vim.notify('dg-lsp is not running', vim.log.levels.WARN)
    return
  end
  clients[1]:request('workspace/executeCommand', { command = command, arguments = {} }, function(err, res)
    if err then
      vim.notify('dg-lsp: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif cb then
      cb(res)
    end
  end)
end

local function show_status(res)
  if res.error then
    vim.notify('dg-lsp: model failed to load: ' .. res.error, vim.log.levels.ERROR)
  elseif res.loaded then
    local m = res.model or {}
    vim.notify(('dg-lsp: ready (%s, %s, %s)'):format(m.path or '?', m.device or '?', m.dtype or '?'))
  else
    vim.notify('dg-lsp: loading the model')
  end
end

function M.reload_model()
  exec('dg-lsp.reloadModel', show_status)
end

function M.status()
  exec('dg-lsp.status', show_status)
end

--- Tune the model on the workspace (in the background; progress in $/progress).
function M.tune()
  exec('dg-lsp.tune', function(res)
    if res and res.started == false then
      vim.notify('dg-lsp: a tune is already running')
    else
      vim.notify('dg-lsp: tuning on ' .. ((res and res.tune and res.tune.workspace) or 'the workspace'))
    end
  end)
end

function M.tune_cancel()
  exec('dg-lsp.tuneCancel', function(res)
    vim.notify(res and res.cancelled and 'dg-lsp: tune cancelled' or 'dg-lsp: no tune running')
  end)
end

local function on_attach(opts, client, bufnr)
  local inline = opts.inline and has_inline()
  local completion = opts.completion
  if completion == nil then
    completion = inline and 'manual' or 'auto'
  end
  if completion then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = completion == 'auto' })
  end
  local keys = opts.keys or {}
  local function map(mode, lhs, rhs, desc, extra)
    if lhs then
      vim.keymap.set(mode, lhs, rhs, vim.tbl_extend('force', { buffer = bufnr, desc = desc }, extra or {}))
    end
  end
  if inline then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    map('i', keys.accept, function()
      if not vim.lsp.inline_completion.get() then
        return keys.accept -- no ghost text: the key does what it always does
      end
    end, 'dg-lsp: accept the ghost text', { expr = true, replace_keycodes = true })
    map('i', keys.next, function()
      vim.lsp.inline_completion.select({ count = 1 })
    end, 'dg-lsp: next candidate')
    map('i', keys.prev, function()
      vim.lsp.inline_completion.select({ count = -1 })
    end, 'dg-lsp: previous candidate')
  end
  if completion then
    map('i', keys.complete, vim.lsp.completion.get, 'dg-lsp: completion item now')
  end
  map('x', keys.rewrite, M.rewrite_selection, 'dg-lsp: rewrite the selection')
  map('n', keys.fill, M.fill_holes, 'dg-lsp: fill the holes of this function')
end

--- Configure and enable the dg_lsp server (vim.lsp.config + vim.lsp.enable).
function M.setup(user)
  if vim.fn.has('nvim-0.11') ~= 1 then
    vim.notify('dg-lsp needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  local opts = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), user or {})
  if user and user.filetypes then
    opts.filetypes = user.filetypes -- a list replaces, it does not merge
  end
  if user and user.cmd then
    opts.cmd = user.cmd
  end
  M.options = opts
  local settings = opts.settings or {}
  if next(settings) == nil then
    settings = vim.empty_dict() -- {} (a JSON object), not []
  end
  vim.lsp.config('dg_lsp', {
    cmd = opts.cmd,
    filetypes = opts.filetypes,
    root_markers = { '.git' },
    -- settings reach the server at start (initializationOptions) and on
    -- workspace/didChangeConfiguration (the server reads the dgLsp section)
    init_options = settings,
    settings = { dgLsp = settings },
    on_attach = function(client, bufnr)
      on_attach(opts, client, bufnr)
    end,
  })
  vim.lsp.enable('dg_lsp')

  vim.api.nvim_create_user_command('DgLspRewrite', function(a)
    local range
    if a.range > 0 then
      -- the visual selection when given one ('<,'> marks), else whole lines
      local s, e = vim.api.nvim_buf_get_mark(0, '<'), vim.api.nvim_buf_get_mark(0, '>')
      if s[1] ~= a.line1 or e[1] ~= a.line2 then
        s = { a.line1, 0 }
        e = { a.line2, math.max(#vim.fn.getline(a.line2) - 1, 0) }
      end
      range = { start = s, ['end'] = e }
    end
    M.rewrite_selection(range)
  end, { range = true, desc = 'dg-lsp: rewrite the selection' })
  vim.api.nvim_create_user_command('DgLspFillHoles', M.fill_holes, { desc = 'dg-lsp: fill the holes' })
  vim.api.nvim_create_user_command('DgLspReloadModel', M.reload_model, { desc = 'dg-lsp: reload the model' })
  vim.api.nvim_create_user_command('DgLspStatus', M.status, { desc = 'dg-lsp: model status' })
  vim.api.nvim_create_user_command('DgLspTune', M.tune, { desc = 'dg-lsp: tune the model on the workspace' })
  vim.api.nvim_create_user_command('DgLspTuneCancel', M.tune_cancel, { desc = 'dg-lsp: cancel the tune' })
end

return M
