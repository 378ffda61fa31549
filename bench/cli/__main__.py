"""`python -m bench.cli`, as `python -m bench.cli` ran the single-file CLI before."""

from bench.cli import main

main()
