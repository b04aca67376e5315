; Strings and comments (completion is suppressed inside them unless invoked).
[
  (string_literal)
  (character_literal)
] @string
[
  (line_comment)
  (block_comment)
] @comment
(string_interpolation) @interpolation
