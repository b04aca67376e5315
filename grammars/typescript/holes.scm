; Hole markers for TypeScript: TODO comments, `throw new Error("TODO")`.
((comment) @hole
  (#match? @hole "TODO|FIXME"))
((throw_statement
  (new_expression
    constructor: (identifier) @_ctor
    arguments: (arguments (string) @_msg))) @hole
  (#eq? @_ctor "Error")
  (#match? @_msg "TODO|[Nn]ot implemented"))
