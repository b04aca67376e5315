; Hole markers for Lua: TODO comments, `error("TODO")`.
((comment) @hole
  (#match? @hole "TODO|FIXME"))
((function_call
  name: (identifier) @_fn
  arguments: (arguments (string) @_msg)) @hole
  (#eq? @_fn "error")
  (#match? @_msg "TODO|[Nn]ot implemented"))
