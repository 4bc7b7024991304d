"""`python -m facedist ...`: the same as the `facedist` command."""
import sys

from .cli import program

sys.exit(program())
