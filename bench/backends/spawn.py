"""Starting a backend's model process, as early as the CLI knows it will want one.

Standard library only, so that `bench run` can start the child before its own imports:
the child imports torch and transformers while this process imports lm-eval and builds
the tasks, and learns which model to load when the plan is known (ModelProcess).
"""

from __future__ import annotations

import atexit
import codecs
import functools
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

# Backends whose model loads in Python in this process otherwise (servers load nothing).
# In a child, a crash of the model's native code (llama.cpp's segfault) or an
# out-of-memory kill ends only the child: bench reports it and keeps what was answered.
PROCESS_BACKENDS = {"hf", "llamacpp"}


def in_child_process(backend: str) -> bool:
    """Whether this backend's model runs in its own process (BENCH_MODEL_PROCESS=0: no)."""
    return backend in PROCESS_BACKENDS and os.environ.get("BENCH_MODEL_PROCESS", "1") != "0"


@dataclass
class Spawned:
    """A started model process, importing its backend, not yet told which model to load."""

    backend: str
    child: subprocess.Popen
    conn: Connection
    relay: threading.Thread | None = None  # copies the child's stderr (_relay)

    def kill(self) -> None:
        self.child.kill()
        self.child.wait()
        self.conn.close()
        self.output_done()

    def output_done(self) -> None:
        """Wait, once the child has exited, until all it wrote has been copied."""
        if self.relay is not None:
            self.relay.join(timeout=5)


def spawn(backend: str) -> Spawned:
    from bench.trace import mark

    mark("model_process_spawned")
    ours, theirs = Pipe()
    relay = not _stderr_is_inherited()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.backends.process", str(theirs.fileno()), backend],
        pass_fds=[theirs.fileno()],
        stderr=subprocess.PIPE if relay else None,
    )
    theirs.close()
    copier = None
    if relay:
        copier = threading.Thread(target=_relay, args=(child.stderr,), daemon=True)
        copier.start()
    return Spawned(backend, child, ours, copier)


def _stderr_is_inherited() -> bool:
    """Whether a child writing to file descriptor 2 writes where sys.stderr does; not in a
    notebook, whose sys.stderr is the cell and fd 2 the terminal that started the kernel."""
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _relay(stream) -> None:
    """Copy the child's stderr (its progress bars, warnings) to sys.stderr as it comes."""
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    for chunk in iter(lambda: stream.read1(65536), b""):
        sys.stderr.write(decode(chunk))
        sys.stderr.flush()


def process_model_path(backend: str, first_model: str | None, local: bool) -> Path | None:
    """Where a run's first model is if it will load in a child process: the run is local,
    its backend loads in Python, and the model is here (a pack already materialized, or a
    folder; for a GGUF backend its .gguf file). None otherwise."""
    if not (local and first_model and in_child_process(backend)):
        return None
    from bench.backends import GGUF_BACKENDS

    if backend in GGUF_BACKENDS:
        return _local_gguf(first_model)
    from bench.models.resolve import local_model_path

    path = local_model_path(first_model)
    return path if path is not None and (path / "config.json").is_file() else None


def _local_gguf(name: str) -> Path | None:
    """The GGUF file that resolve_model(name, gguf=True) will pick, if it is here; its
    checks come later, with the resolution."""
    from bench.models.packs import PACKS
    from bench.models.resolve import gguf_file

    return _pack_gguf(name) if name in PACKS else gguf_file(Path(name).expanduser())


@functools.cache  # a pack's file stays put; finding Gemma's hashes its 253 MB (0.2 s)
def _pack_gguf(name: str) -> Path | None:
    from bench.models.packs import PACKS

    try:
        return PACKS[name].locate_gguf()
    except Exception:  # noqa: BLE001 - not installed, or a bad file: resolving says which
        return None


def spawn_for(backend: str, first_model: str | None, local: bool) -> Spawned | None:
    """A process for the run's first model where process_model_path says there will be
    one: it imports the backend at once and is told the model later (ModelProcess). The
    one spawn_early started is handed over if it imports this backend."""
    global _early
    early, _early = _early, None
    wanted = process_model_path(backend, first_model, local) is not None
    if early is not None and not (wanted and early.backend == backend):
        early.kill()
        early = None
    return (early or spawn(backend)) if wanted else None


_early: Spawned | None = None


def spawn_early(argv: list[str]) -> None:
    """Start the model process of a `bench run` from its raw arguments, before the CLI
    imports its own modules (0.3 s sooner), where they name a local run of a backend that
    loads in a child (hf by default). spawn_for takes it over once the options are parsed;
    if nothing does (bad options, a model not here), it is killed at exit."""
    global _early
    if not argv or argv[0] != "run" or {"--help", "--dry-run"} & set(argv):
        return
    backend = _option(argv, "--backend", "hf")
    if _option(argv, "--executor", "local") != "local" or not in_child_process(backend):
        return
    _early = spawn(backend)
    atexit.register(_kill_unclaimed)


def _option(argv: list[str], name: str, default: str) -> str:
    """The last value given for a long option, as --name VALUE or --name=VALUE."""
    value = default
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _kill_unclaimed() -> None:
    global _early
    if _early is not None:
        _early.kill()
        _early = None
