"""The pre-submit check: reading a change (a patch, the index, the working tree, a git range) and
comparing the findings of the tree before it with those after it."""
