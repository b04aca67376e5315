; Hole markers for C++: TODO comments, `throw std::logic_error("TODO")`.
((comment) @hole
  (#match? @hole "TODO|FIXME"))
((throw_statement
  (call_expression
    arguments: (argument_list (string_literal) @_msg))) @hole
  (#match? @_msg "TODO|[Nn]ot implemented"))
