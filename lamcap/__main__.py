"""`python -m lamcap` is the `lamcap` command."""
import sys

from lamcap.cli import main

sys.exit(main())
