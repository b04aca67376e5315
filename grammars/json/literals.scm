; Strings and comments (completion is suppressed inside them unless invoked).
(string) @string
(comment) @comment
