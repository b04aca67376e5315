; Hole markers for Java: TODO comments, `throw new UnsupportedOperationException(...)`.
((line_comment) @hole
  (#match? @hole "TODO|FIXME"))
((block_comment) @hole
  (#match? @hole "TODO|FIXME"))
((throw_statement
  (object_creation_expression
    type: (type_identifier) @_type)) @hole
  (#eq? @_type "UnsupportedOperationException"))
