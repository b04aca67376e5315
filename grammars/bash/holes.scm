; Hole markers for Bash: TODO comments.
((comment) @hole
  (#match? @hole "TODO|FIXME"))
