; Scopes for JSON (tree-sitter-json 0.24): no functions or classes, only containers.
[
  (object)
  (array)
] @scope.block
