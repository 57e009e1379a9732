"""`python -m lamcap` is the `lamcap` command."""
import sys

from lamcap.orchestrator.cli import main

sys.exit(main())
