"""`python -m bootguard`."""

import sys

from bootguard.cli.main import main

sys.exit(main(sys.argv[1:]))
