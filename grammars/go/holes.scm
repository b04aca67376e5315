; Hole markers for Go: TODO comments, `panic("TODO")`, `panic("not implemented")`.
((comment) @hole
  (#match? @hole "TODO|FIXME"))
((call_expression
  function: (identifier) @_fn
  arguments: (argument_list (interpreted_string_literal) @_msg)) @hole
  (#eq? @_fn "panic")
  (#match? @_msg "TODO|[Nn]ot implemented"))
