"""The `bench` command: starts a run's model process before importing the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    from bench.backends.spawn import spawn_early

    spawn_early(sys.argv[1:])
    from bench.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
