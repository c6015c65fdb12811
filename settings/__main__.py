"""`python -m settings`: the settings table of docs/operations.md, generated from the declarations."""

from settings import markdown_table

print(markdown_table(), end="")
