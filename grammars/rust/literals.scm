; Strings and comments (completion is suppressed inside them unless invoked).
[
  (string_literal)
  (raw_string_literal)
  (char_literal)
] @string
[
  (line_comment)
  (block_comment)
] @comment
