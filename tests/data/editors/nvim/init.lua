-- Test init for headless Neovim: the plugin from editors/nvim, configured like a user's init.lua.
-- DG_LSP_CMD: the server command line (JSON array); DG_LSP_PLUGIN: editors/nvim.
vim.opt.rtp:prepend(os.getenv('DG_LSP_PLUGIN'))
vim.opt.swapfile = false
vim.opt.shadafile = 'NONE'
vim.cmd('filetype on')
require('dg_lsp').setup({
  cmd = vim.json.decode(os.getenv('DG_LSP_CMD')),
  settings = vim.json.decode(os.getenv('DG_LSP_SETTINGS') or '{}'),
})
