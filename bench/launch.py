"""The `bench` command: handed to a warm process if one serves this environment
(bench/warm), else started here, its model process before the CLI's imports."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] != ["warm"]:
        from bench.warm.client import hand_over

        code = hand_over(sys.argv)
        if code is not None:
            sys.exit(code)
    start_here()


def start_here() -> None:
    """Run the command in this process (a warm process's child calls this too)."""
    from bench.backends.spawn import spawn_early

    spawn_early(sys.argv[1:])
    from bench.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
