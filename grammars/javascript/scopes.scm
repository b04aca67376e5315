; Scopes for JavaScript (tree-sitter-javascript 0.25).
[
  (function_declaration)
  (function_expression)
  (generator_function)
  (generator_function_declaration)
  (arrow_function)
  (method_definition)
] @scope.function

[
  (class_declaration)
  (class)
] @scope.class

[
  (statement_block)
  (class_body)
  (class_static_block)
  (switch_case)
  (switch_default)
] @scope.block
