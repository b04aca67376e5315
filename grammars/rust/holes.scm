; Hole markers for Rust: `todo!()`, `unimplemented!()`, TODO comments.
((macro_invocation
  macro: (identifier) @_mac) @hole
  (#any-of? @_mac "todo" "unimplemented"))
((line_comment) @hole
  (#match? @hole "TODO|FIXME"))
((block_comment) @hole
  (#match? @hole "TODO|FIXME"))
