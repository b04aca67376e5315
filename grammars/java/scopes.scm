; Scopes for Java (tree-sitter-java 0.23).
[
  (method_declaration)
  (constructor_declaration)
  (compact_constructor_declaration)
  (lambda_expression)
] @scope.function

[
  (class_declaration)
  (interface_declaration)
  (enum_declaration)
  (record_declaration)
  (annotation_type_declaration)
] @scope.class

[
  (block)
  (class_body)
  (constructor_body)
  (interface_body)
  (enum_body)
  (enum_body_declarations)
  (annotation_type_body)
  (switch_block_statement_group)
] @scope.block
