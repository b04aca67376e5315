; Scopes for Rust (tree-sitter-rust 0.24).
[
  (function_item)
  (closure_expression)
] @scope.function

[
  (struct_item)
  (enum_item)
  (union_item)
  (impl_item)
  (trait_item)
  (mod_item)
] @scope.class

[
  (block)
  (declaration_list)
  (field_declaration_list)
  (enum_variant_list)
] @scope.block
