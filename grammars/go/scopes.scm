; Scopes for Go (tree-sitter-go 0.25).
[
  (function_declaration)
  (method_declaration)
  (func_literal)
] @scope.function

(type_declaration
  (type_spec type: [(struct_type) (interface_type)])) @scope.class

; `statement_list` holds the statements of a block; listing it makes statement
; lines recognisable as syntax boundaries.
[
  (block)
  (statement_list)
  (field_declaration_list)
  (interface_type)
  (expression_case)
  (type_case)
  (default_case)
  (communication_case)
] @scope.block
