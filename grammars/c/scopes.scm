; Scopes for C (tree-sitter-c 0.24).
(function_definition) @scope.function

[
  (struct_specifier body: (_))
  (union_specifier body: (_))
  (enum_specifier body: (_))
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
