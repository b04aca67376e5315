; Scopes for Bash (tree-sitter-bash 0.25). Bash has no classes.
(function_definition) @scope.function

; if/elif/else/case bodies hold their statements directly.
[
  (compound_statement)
  (subshell)
  (do_group)
  (if_statement)
  (elif_clause)
  (else_clause)
  (case_item)
] @scope.block
