"""Run the command line as ``python -m dam_dedupe``."""

from dam_dedupe.cli import main

main()
