; Strings and comments (completion is suppressed inside them unless invoked).
; @interpolation marks code inside a literal (f-string replacement fields).
(string) @string
(comment) @comment
(interpolation) @interpolation
