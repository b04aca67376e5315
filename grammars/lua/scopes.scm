; Scopes for Lua (tree-sitter-lua 0.5). Lua has no classes; tables stand in.
[
  (function_declaration)
  (function_definition)
] @scope.function

(block) @scope.block
