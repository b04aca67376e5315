; Strings and comments (completion is suppressed inside them unless invoked).
[
  (string_literal)
  (char_literal)
  (system_lib_string)
] @string
(comment) @comment
