"""Run the CLI with ``python -m dpsynth.cli``."""

import sys

from dpsynth.cli import main

sys.exit(main())
