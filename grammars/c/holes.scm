; Hole markers for C: TODO comments (`// TODO`, `/* TODO */`).
((comment) @hole
  (#match? @hole "TODO|FIXME"))
