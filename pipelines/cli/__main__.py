"""`python -m pipelines.cli`: the `inferledger` command."""

import sys

from pipelines.cli import main

sys.exit(main())
