; Hole markers for Python: `...`, `pass`, TODO comments, `raise NotImplementedError`.
(expression_statement (ellipsis)) @hole
(pass_statement) @hole
((comment) @hole
  (#match? @hole "TODO|FIXME"))
(raise_statement
  (identifier) @_exc
  (#eq? @_exc "NotImplementedError")) @hole
(raise_statement
  (call function: (identifier) @_exc)
  (#eq? @_exc "NotImplementedError")) @hole
