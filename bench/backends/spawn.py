"""Starting a backend's model process, as early as the CLI knows it will want one.

Standard library only, so that `bench run` can start the child before its own imports:
the child imports torch and transformers while this process imports lm-eval and builds
the tasks, and learns which model to load when the plan is known (ModelProcess).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

# Backends whose model loads in Python in this process otherwise (servers load nothing).
PROCESS_BACKENDS = {"hf"}


def in_child_process(backend: str) -> bool:
    """Whether this backend's model runs in its own process (BENCH_MODEL_PROCESS=0: no)."""
    return backend in PROCESS_BACKENDS and os.environ.get("BENCH_MODEL_PROCESS", "1") != "0"


@dataclass
class Spawned:
    """A started model process, importing its backend, not yet told which model to load."""

    backend: str
    child: subprocess.Popen
    conn: Connection

    def kill(self) -> None:
        self.child.kill()
        self.child.wait()
        self.conn.close()


def spawn(backend: str) -> Spawned:
    from bench.trace import mark

    mark("model_process_spawned")
    ours, theirs = Pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.backends.process", str(theirs.fileno()), backend],
        pass_fds=[theirs.fileno()],
    )
    theirs.close()
    return Spawned(backend, child, ours)


def process_model_path(backend: str, first_model: str | None, local: bool) -> Path | None:
    """The folder of a run's first model if it will load in a child process: the run is
    local, its backend loads in Python, and the model is here (a pack already
    materialized, or a folder). None otherwise."""
    if not (local and first_model and in_child_process(backend)):
        return None
    from bench.models.resolve import local_model_path

    path = local_model_path(first_model)
    return path if path is not None and (path / "config.json").is_file() else None


def spawn_for(backend: str, first_model: str | None, local: bool) -> Spawned | None:
    """A process for the run's first model where process_model_path says there will be
    one: it imports the backend at once and is told the model later (ModelProcess)."""
    return spawn(backend) if process_model_path(backend, first_model, local) else None
