"""Runs untrusted Python (model-written code) in a throwaway, isolated process.

Each program runs in its own session (process group) with a fresh temporary folder as its
working directory, limits on CPU time, address space, file size and process count, no
core dumps, and a wall-clock timeout; afterwards every process it left is killed.
Where the harness runs as root (containers, CI) the sandbox also gets no network (an
empty network namespace), a read-only view of every filesystem except its own tmpfs
/tmp, and a uid of its own, so it cannot signal the harness or any other process.
Without root it gets no network only where the kernel allows unprivileged user
namespaces; `Outcome.isolation` records what was in place.
The program itself is started by bench/sandbox_init.py, which sets all of this up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

INIT = Path(__file__).with_name("sandbox_init.py")
# Sandbox uids: 1,000,000 + the sandbox's pid, unique while it lives, never a real user.
UID_BASE = 1_000_000


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    processes: int = 32
    tmpfs_bytes: int = 64 << 20


@dataclass(frozen=True)
class Outcome:
    passed: bool  # exited 0 within its limits
    status: str  # "passed", "failed" (non-zero exit or killed by a limit), "timeout"
    returncode: int | None
    output: str  # the end of its stdout + stderr
    isolation: dict = field(default_factory=dict)  # network / filesystem / uid in place


def _interpreter() -> tuple[str, str]:
    """The base interpreter (not the venv's: the sandbox needs only the standard library)."""
    prefix = os.path.realpath(sys.base_prefix)
    python = os.path.realpath(sys.executable)
    return python, prefix


def _kill_everything(pid: int, uid: int | None) -> None:
    """SIGKILL the process group, and (with a uid of its own) every process of that uid,
    which also catches children that left the group with setsid()."""
    if uid is not None:
        # kill(-1) from a process with the sandbox's uid reaches exactly its processes.
        subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                f"import os,signal\nos.setgroups([]);os.setgid({uid});os.setuid({uid})\n"
                "try: os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError: pass",
            ],
            check=False,
            timeout=30,
        )
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(source: str, limits: Limits = Limits()) -> Outcome:
    """Run `source` with `python -I -S -` in a sandbox; never raises for what the program does
    (SandboxError only when the sandbox itself cannot be set up)."""
    python, prefix = _interpreter()
    config = {
        "python": python,
        "prefix": prefix,
        "uid_base": UID_BASE,
        "limits": {k: v for k, v in asdict(limits).items() if k != "wall_s"},
    }
    as_root = os.geteuid() == 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-sandbox-") as workdir,
        tempfile.TemporaryFile() as program,
        tempfile.TemporaryFile() as output,
    ):
        program.write(source.encode())
        program.seek(0)
        config["workdir"] = workdir
        status_r, status_w = os.pipe()
        proc = None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(INIT), json.dumps(config), str(status_w)],
                stdin=program,
                # A file, not a pipe: RLIMIT_FSIZE bounds it and nothing can block on it.
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin"},
                start_new_session=True,
                pass_fds=(status_w,),
            )
            os.close(status_w)
            status_w = -1
            report = _read_status(status_r)
            if "error" in report:
                raise SandboxError(f"sandbox setup failed: {report['error']}")
            try:
                returncode, timed_out = proc.wait(timeout=limits.wall_s), False
            except subprocess.TimeoutExpired:
                returncode, timed_out = None, True
        finally:
            if status_w >= 0:
                os.close(status_w)
            os.close(status_r)
            if proc is not None:  # always: whatever it started dies with it
                _kill_everything(proc.pid, UID_BASE + proc.pid if as_root else None)
                proc.wait()
        output.seek(0, os.SEEK_END)
        output.seek(max(0, output.tell() - 4000))
        tail = output.read().decode("utf-8", "replace")
    if timed_out:
        return Outcome(False, "timeout", None, tail, report)
    passed = returncode == 0
    return Outcome(passed, "passed" if passed else "failed", returncode, tail, report)


def _read_status(fd: int) -> dict:
    """The launcher's one JSON line; empty if it died before writing it."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    text = b"".join(chunks).decode()
    return json.loads(text) if text else {"error": "the sandbox launcher died before reporting"}
