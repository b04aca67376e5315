; Scopes for C++ (tree-sitter-cpp 0.23).
[
  (function_definition)
  (lambda_expression)
] @scope.function

[
  (class_specifier body: (_))
  (struct_specifier body: (_))
  (union_specifier body: (_))
  (enum_specifier body: (_))
  (namespace_definition)
] @scope.class

[
  (compound_statement)
  (field_declaration_list)
  (enumerator_list)
  (declaration_list)
  (case_statement)
  (preproc_if)
  (preproc_ifdef)
  (preproc_else)
  (preproc_elif)
] @scope.block
