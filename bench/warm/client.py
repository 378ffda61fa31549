"""Handing a `bench` command to a warm process (see bench/warm/__init__.py).

Standard library only: this runs before any of bench's own imports. Protocol, over the
warm process's Unix socket: the client sends one message, a length-prefixed JSON request
(argv, cwd, environment, sys.path[0]) with its stdin, stdout and stderr attached; the warm
side answers `pgid N` once the command runs (in process group N, which then receives the
client's Ctrl-C and other stop signals, and is suspended and resumed with it on Ctrl-Z)
and `exit CODE` when it ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

# Read by bench at call time, not at import: a warm process serves any value of them.
VOLATILE_ENV = {"BENCH_TRACE", "BENCH_WARM", "PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES"}
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HEADER = struct.Struct("!I")


def warm_dir() -> Path:
    """Where warm processes keep their sockets, pid files and logs."""
    override = os.environ.get("BENCH_WARM_DIR")
    if override:
        return Path(override)
    cache = os.environ.get("BENCH_CACHE", str(Path.home() / ".cache" / "bench"))
    return Path(cache) / "warm"


def warm_key(env: dict[str, str]) -> str:
    """What the imports of a warm process depend on: the interpreter, bench's source,
    the installed packages (a site-packages folder changes on every install) and the
    environment (libraries read it at import)."""
    digest = hashlib.sha256(f"{sys.executable}\n{sys.version}\n".encode())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package)} {stat.st_mtime_ns} {stat.st_size}\n".encode())
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")) and os.path.isdir(entry):
            digest.update(f"{entry} {os.stat(entry).st_mtime_ns}\n".encode())
    for name, value in sorted(env.items()):
        if name not in VOLATILE_ENV:
            digest.update(f"{name}={value}\n".encode())
    return digest.hexdigest()[:24]


def socket_path(env: dict[str, str] | None = None) -> Path:
    return warm_dir() / f"{warm_key(dict(os.environ) if env is None else env)}.sock"


def hand_over(argv: list[str]) -> int | None:
    """Run the command in the warm process that matches this one, if there is one, and
    return its exit code; None (nothing started) when there is none to use."""
    if os.environ.get("BENCH_WARM") == "0":
        return None
    path = socket_path()
    if not path.exists():
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(path))
    except OSError:  # a closed standard stream, or a warm process gone since
        return None
    request = json.dumps(
        {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "path0": sys.path[0]}
    ).encode()
    with conn:
        try:
            socket.send_fds(conn, [HEADER.pack(len(request)) + request], [0, 1, 2])
            replies = conn.makefile("r")
            started = replies.readline().split()
        except OSError:
            return None
        if len(started) != 2 or started[0] != "pgid":
            return None  # it could not start the command: start it here instead
        group = int(started[1])
        for number in FORWARDED_SIGNALS:
            signal.signal(number, lambda signum, _frame: _signal_group(group, signum))
        signal.signal(signal.SIGTSTP, lambda *_: _suspend(group))
        ended = replies.readline().split()
    if len(ended) == 2 and ended[0] == "exit":
        return int(ended[1])
    sys.stderr.write("bench: the warm bench process went away during the command\n")
    return 1


def _suspend(group: int) -> None:
    """Ctrl-Z: stop the command with this process, and resume it with this one."""
    _signal_group(group, signal.SIGSTOP)
    # SIGSTOP, not SIGTSTP: the kernel drops the latter in an orphaned process group.
    os.kill(os.getpid(), signal.SIGSTOP)  # stopped here until the shell's fg or bg
    _signal_group(group, signal.SIGCONT)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass
