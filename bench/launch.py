"""The `bench` command: other libraries quieted (bench/quiet.py), then its model process
started before the CLI's imports."""

from __future__ import annotations

import sys


def main() -> None:
    from bench.quiet import quiet_libraries, verbose_requested

    if not verbose_requested(sys.argv[1:]):
        quiet_libraries()
    from bench.backends.spawn import spawn_early

    spawn_early(sys.argv[1:])
    from bench.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
