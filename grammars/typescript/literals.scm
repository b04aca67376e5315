; Strings and comments (completion is suppressed inside them unless invoked).
; @interpolation marks code inside a literal (template substitutions).
[
  (string)
  (template_string)
  (regex)
] @string
(comment) @comment
(template_substitution) @interpolation
