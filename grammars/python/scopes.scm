; Scopes for Python (tree-sitter-python 0.25).
(function_definition) @scope.function
(lambda) @scope.function

(class_definition) @scope.class

(block) @scope.block
