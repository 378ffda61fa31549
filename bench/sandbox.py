"""Runs untrusted Python (model-written code) in a throwaway, isolated process tree.

Each program runs in its own session (process group) with a fresh temporary folder as its
working directory, limits on CPU time, address space, file size and process count, no
core dumps, and a wall-clock timeout; afterwards every process it left is killed.
Memory and process count are bounded for the whole tree, not per process: by a cgroup v2
of its own where the machine lets the harness make one, else by the launcher, which polls
the tree's total resident memory and process count and kills the tree when either passes
its limit (RLIMIT_NPROC bounds a fork bomb between two polls).
Where the harness runs as root (containers, CI) the sandbox also gets no network (an
empty network namespace), a read-only view of every filesystem except its own tmpfs
/tmp, a PID namespace whose /proc shows only its own processes, and a uid of its own, so
it cannot signal the harness or any other process. Without root it gets network, PID and
user namespaces only where the kernel allows unprivileged ones; `Outcome.isolation`
records what was in place.
The program itself is started by bench/sandbox_init.py, which sets all of this up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

INIT = Path(__file__).with_name("sandbox_init.py")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Sandbox uids: 1,000,000 + the sandbox's pid, unique while it lives, never a real user.
UID_BASE = 1_000_000
# The launcher writes the same line when it kills a tree for its memory.
MEMORY_NOTE = "sandbox: killed: its processes together used more than {} bytes of memory"


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    processes: int = 16  # the program and every process it starts, at once
    tmpfs_bytes: int = 64 << 20


@dataclass(frozen=True)
class Outcome:
    passed: bool  # exited 0 within its limits
    status: str  # "passed", "failed" (non-zero exit or killed by a limit), "timeout"
    returncode: int | None
    output: str  # the end of its stdout + stderr
    # What was in place: network, filesystem, uid, pid_namespace (own /proc), and
    # tree_limits ("cgroup" or "supervisor": what bounds the tree's memory and processes).
    isolation: dict = field(default_factory=dict)


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
    _kill_group(pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Cgroup:
    """A cgroup v2 of the sandbox's own under the harness's, bounding the whole tree."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, limits: Limits) -> _Cgroup | None:
        """None where the machine gives none: cgroup v1, read-only, no controllers, or the
        harness's cgroup holds processes (cgroup v2 lets only the root one hold processes
        and also hand memory and pids to children: a container's own cgroup cannot)."""
        wanted = {"memory", "pids"}
        try:
            if not (CGROUP_ROOT / "cgroup.controllers").exists():
                return None  # not cgroup v2 at /sys/fs/cgroup
            lines = Path("/proc/self/cgroup").read_text().splitlines()
            own = next(line[3:] for line in lines if line.startswith("0::"))
            parent = CGROUP_ROOT / own.strip().lstrip("/")
            if not wanted <= set((parent / "cgroup.controllers").read_text().split()):
                return None
            if not wanted <= set((parent / "cgroup.subtree_control").read_text().split()):
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            path = parent / f"bench-sandbox-{uuid.uuid4().hex}"
            path.mkdir()
        except (OSError, StopIteration):
            return None
        cgroup = cls(path)
        try:
            (path / "memory.max").write_text(str(limits.memory_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
            (path / "memory.oom.group").write_text("1")  # one OOM kill takes the whole tree
            # The launcher and the init live in it too.
            (path / "pids.max").write_text(str(limits.processes + 2))
        except OSError:
            cgroup.remove()
            return None
        return cgroup

    def oom_killed(self) -> bool:
        try:
            events = dict(x.split() for x in (self.path / "memory.events").read_text().splitlines())
        except (OSError, ValueError):
            return False
        return int(events.get("oom_kill", 0)) > 0

    def remove(self) -> None:
        """Kill what is left in it, then remove it (retried while its last processes exit)."""
        for _ in range(500):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                pass
            try:
                if (self.path / "cgroup.kill").exists():  # Linux 5.14 and later
                    (self.path / "cgroup.kill").write_text("1")
                else:
                    for pid in (self.path / "cgroup.procs").read_text().split():
                        _kill(int(pid))
            except OSError:
                pass
            time.sleep(0.01)


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
    cgroup = _Cgroup.make(limits)
    config["cgroup"] = str(cgroup.path) if cgroup else None
    report: dict = {}
    group = None
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
            # The program's own process group, where it has no PID namespace.
            group = report.pop("group", None)
            if "error" in report:
                raise SandboxError(f"sandbox setup failed: {report['error']}")
            try:
                returncode, timed_out = proc.wait(timeout=limits.wall_s), False
            except subprocess.TimeoutExpired:
                returncode, timed_out = None, True
                proc.terminate()  # the launcher kills the tree it supervises, then exits
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if status_w >= 0:
                os.close(status_w)
            os.close(status_r)
            if proc is not None:  # always: whatever it started dies with it
                # Its own PID namespace dies with the launcher's group; else, as root, kill
                # by uid what the launcher (had it been killed) did not.
                by_uid = as_root and not report.get("pid_namespace")
                _kill_everything(proc.pid, UID_BASE + proc.pid if by_uid else None)
                if group is not None:
                    _kill_group(group)
                proc.wait()
            if cgroup is not None:
                oom_killed = cgroup.oom_killed()
                cgroup.remove()
        output.seek(0, os.SEEK_END)
        output.seek(max(0, output.tell() - 4000))
        tail = output.read().decode("utf-8", "replace")
    if cgroup is not None and oom_killed:
        tail += "\n" + MEMORY_NOTE.format(limits.memory_bytes) + "\n"
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
