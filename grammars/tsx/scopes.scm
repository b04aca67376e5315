; Scopes for TypeScript / TSX (tree-sitter-typescript 0.23).
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
  (abstract_class_declaration)
  (class)
  (interface_declaration)
  (enum_declaration)
  (internal_module)
] @scope.class

[
  (statement_block)
  (class_body)
  (class_static_block)
  (interface_body)
  (enum_body)
  (switch_case)
  (switch_default)
] @scope.block
