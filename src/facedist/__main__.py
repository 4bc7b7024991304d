"""`python -m facedist ...`: the same as the `facedist` command."""
import sys

from .cli import main

sys.exit(main())
