; Strings and comments (completion is suppressed inside them unless invoked).
[
  (interpreted_string_literal)
  (raw_string_literal)
  (rune_literal)
] @string
(comment) @comment
