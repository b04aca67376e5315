; Strings and comments (completion is suppressed inside them unless invoked).
; @interpolation marks code inside a literal (`$(...)`, `${...}`).
[
  (string)
  (raw_string)
  (ansi_c_string)
  (translated_string)
  (heredoc_body)
] @string
(comment) @comment
[
  (command_substitution)
  (expansion)
] @interpolation
