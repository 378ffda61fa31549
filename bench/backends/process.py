"""A backend in a child process, loading its model while this process builds the tasks.

Importing torch and transformers and reading the weights (7 s on the 2-core machine) and
building the tasks (3 s: lm-eval, datasets, the store) are both single-threaded Python, so
in one process they add up; in two they overlap on two cores. The child builds the very
backend `create_backend` builds and answers lm-eval's requests with it; each answer and
its timing comes back as soon as it is done, so the request cache (in this process, with
the store) gets it as in a single-process run. A crash there (a segfault in llama.cpp,
the out-of-memory killer) ends only the child: this process says so in one line and keeps
every answer. Set BENCH_MODEL_PROCESS=0 to load the model in this process instead.

Run as `python -m bench.backends.process FD BACKEND` (bench/backends/spawn.py): FD is
the child's end of the pipe.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from bench.backends.base import LoggedLM
from bench.backends.spawn import Spawned, process_model_path, spawn
from bench.backends.timing import RequestKey, RequestLog
from bench.errors import BadInput, RunFailed
from bench.records import Determinism, ExecutorOptions, RunPlan, RunSettings

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")
# What the child may be asked besides requests: lm-eval builds chat prompts with these.
CALLS = ("apply_chat_template", "chat_template", "seed_torch")


def start_loading(
    plan: RunPlan, executor: ExecutorOptions, spawned: Spawned | None = None
) -> dict[Path, ModelProcess]:
    """The plan's first model, loading in its own process from now on (in `spawned`, if
    the CLI started one), where process_model_path says so; by resolved model folder."""
    first = plan.models[0] if plan.models else None
    path = process_model_path(plan.settings.backend, first, executor.kind == "local")
    if spawned is not None and (path is None or spawned.backend != plan.settings.backend):
        spawned.kill()
        spawned = None
    if path is None:
        return {}
    process = ModelProcess(spawned or spawn(plan.settings.backend), path, plan.settings)
    return {path.resolve(): process}


class ModelProcess(LoggedLM, LM):
    """lm-eval's LM for a backend that runs in a child process (see module docstring).

    Starting returns at once; `ready()` waits for the model to be loaded."""

    def __init__(self, spawned: Spawned, model_path: Path, settings: RunSettings):
        super().__init__()
        self.model_path = Path(model_path)
        self._spawned = spawned
        self._child = spawned.child
        self._conn = spawned.conn
        self._info: dict | None = None
        self._busy = False  # a call is under way: the child reads nothing until it ends
        self._seed: int | None = None
        self._asked: list[RequestKey] = []  # the requests of the call under way, in order
        self._templates: dict[bytes, Any] = {}
        try:
            self._conn.send((str(model_path), settings))
        except OSError as err:  # it died while importing (a BrokenPipeError, click exits 1)
            raise self._died() from err

    def ready(self) -> ModelProcess:
        if self._info is None:
            self._info = self._receive()[1]
        return self

    @property
    def load_s(self) -> float:
        return self.ready()._info["load_s"]

    # One model process is one rank: lm-eval builds every request while the model loads.
    @property
    def rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    @property
    def tokenizer_name(self) -> str:
        return self.ready()._info["tokenizer_name"]

    @property
    def determinism(self) -> Determinism | None:
        return self.ready()._info["determinism"]

    def apply_chat_template(self, *args, **kwargs):
        return self._template("apply_chat_template", args, kwargs)

    def chat_template(self, *args, **kwargs):
        return self._template("chat_template", args, kwargs)

    def _template(self, name: str, args: tuple, kwargs: dict) -> Any:
        """The child's answer, remembered: once it has died, the documents it answered are
        scored from prompts built again (ReplayLM), and their chat templates with them."""
        # Keyed by a digest: the chat histories are as long as the prompts lm-eval keeps.
        key = hashlib.sha256(repr((name, args, kwargs)).encode()).digest()
        if key not in self._templates:
            self._templates[key] = self._call(name, args, kwargs)
        return self._templates[key]

    def seed_torch(self, seed: int) -> None:
        """Seed torch there before the next request (without waiting for the load)."""
        self._seed = seed

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list:
        return self._ask("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False):
        return self._ask("loglikelihood_rolling", requests)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list:
        return self._ask("generate_until", requests)

    def _ask(self, request_type: str, requests: list[Instance]) -> list:
        self.ready()  # so that the "first_request" trace mark means the model's first
        todo = [requests[i] for i in self._todo(requests, request_type)]
        if self._seed is not None:
            self._call("seed_torch", (self._seed,), {})
            self._seed = None
        if todo:
            by_key = {self.timings.key(r): r for r in todo}
            self._asked = list(by_key)
            self._send(request_type, [(k.task, k.doc_id, k.idx, r.args) for k, r in by_key.items()])
            try:
                while (message := self._receive())[0] == "answer":
                    _, key, timing, answer = message
                    self.timings.add(by_key[key], timing, answer)
            finally:  # if the child died, every answer it gave is in the store all the same
                self.timings.flush()
            self._busy = False
            self._asked = []
        return self._answers(requests)

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        self._send(name, (args, kwargs))
        result = self._receive()[1]
        self._busy = False
        return result

    def _send(self, *message) -> None:
        self.ready()
        self._busy = True
        try:
            self._conn.send(message)
        except OSError as err:
            raise self._died() from err

    def _receive(self) -> tuple:
        try:
            message = self._conn.recv()
        except (EOFError, OSError) as err:
            raise self._died() from err
        if message[0] == "error":
            self._busy = False
            raise message[1]
        return message

    def _died(self) -> RunFailed:
        """One line: which backend died how, doing what, and what a rerun starts from."""
        try:
            code = self._child.wait(timeout=30)
        except subprocess.TimeoutExpired:  # it closed the pipe but lives on
            self._child.kill()
            code = self._child.wait()
        if code < 0:
            how = f"was killed by {_signal_name(-code)}"
            if code == -signal.SIGKILL:
                how += " (the out-of-memory killer's signal, or kill -9)"
        else:
            how = f"exited with code {code}"
        what = f"the {self._spawned.backend} model process ({self.model_path.name}) {how}"
        if self._info is None:
            return RunFailed(f"{what} while loading the model; run the same command to retry")
        # The child answers in its own order (by length, in batches): the first request
        # asked and not answered stands for those it was working on.
        unanswered = [k for k in self._asked if k not in self.timings.answers]
        if unanswered:
            what += f" while answering {unanswered[0].task} doc {unanswered[0].doc_id}"
        if self.timings.cache is None:
            return RunFailed(f"{what}; with --no-cache a rerun asks every request again")
        kept = len(self.timings.answers)
        return RunFailed(
            f"{what}; {kept} answers are in the store: run the same command again to resume"
        )

    def close(self) -> None:
        """Stop the child: at once if it is still loading or busy, else by asking it."""
        if self._conn.closed:
            return
        try:
            if self._busy or self._info is None:
                raise OSError("not listening")
            self._conn.send(("close",))
            self._child.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._child.kill()
            self._child.wait()
        finally:
            self._conn.close()
            self._spawned.output_done()


class _Forwarding(RequestLog):
    """The child's log: every answer also goes straight back to the parent."""

    def __init__(self, conn: Connection):
        super().__init__()
        self.conn = conn

    def add(self, instance, timing, answer) -> None:
        super().add(instance, timing, answer)
        self.conn.send(("answer", self.key(instance), timing, answer))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # one without a name, e.g. a real-time signal
        return f"signal {number}"


def _portable(error: BaseException) -> BaseException:
    """The error itself if it survives pickling, else a RunFailed that names it; either
    way with the child's traceback as a note, for errors that are not the user's."""
    if not isinstance(error, BadInput | RunFailed):
        error.add_note("in the model process:\n" + traceback.format_exc())
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RunFailed(f"{type(error).__name__}: {error}\n{traceback.format_exc()}")


def _seed_torch(seed: int) -> None:
    # A backend that never imported torch (llama.cpp) draws nothing from it: importing it
    # only to seed it would hold up the first request by 2 s.
    if "torch" in sys.modules:
        from lm_eval.utils import set_torch_seed

        set_torch_seed(seed)


def _serve(conn: Connection, name: str) -> None:
    # Importing torch and transformers and loading the model make some 400,000 objects
    # and little garbage; the collector's full passes over them took 0.6-0.8 s of the
    # load here. None run until the model is loaded; then what exists is frozen (left out
    # of later passes) and collection resumes. The process ends soon after any failure.
    gc.disable()
    from bench.backends import create_backend, import_backend

    # The backend's modules import before the model is named, beside the parent's work.
    start = time.perf_counter()
    try:
        import_backend(name)
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        conn.send(("error", _portable(error)))
        return
    importing_s = time.perf_counter() - start
    try:
        model_path, settings = conn.recv()
    except EOFError:  # the parent let go: the plan turned out not to need this process
        return
    start = time.perf_counter() - importing_s  # the load's time, without the wait
    try:
        backend = create_backend(name, Path(model_path), settings)
    except BaseException as error:  # noqa: BLE001
        conn.send(("error", _portable(error)))
        return
    if backend.world_size != 1:
        conn.send(("error", RunFailed("a model process runs one rank: set BENCH_MODEL_PROCESS=0")))
        return
    gc.freeze()
    gc.enable()
    info = {
        "load_s": time.perf_counter() - start,
        "tokenizer_name": backend.tokenizer_name,
        "determinism": getattr(backend, "determinism", None),
    }
    conn.send(("ready", info))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message[0] == "close":
            return
        method, payload = message
        try:
            if method in REQUEST_TYPES:
                backend.timings = _Forwarding(conn)
                requests = [
                    Instance(method, doc={}, arguments=args, idx=idx, metadata=(task, doc_id, 1))
                    for task, doc_id, idx, args in payload
                ]
                getattr(backend, method)(requests)
                conn.send(("done", None))
            elif method == "seed_torch":
                conn.send(("done", _seed_torch(*payload[0])))
            elif method in CALLS:
                args, kwargs = payload
                conn.send(("done", getattr(backend, method)(*args, **kwargs)))
            else:
                raise RunFailed(f"the model process was asked for {method!r}")
        except Exception as error:
            conn.send(("error", _portable(error)))


def run_model_process(conn: Connection, backend: str) -> None:
    """The model process's whole life (started by spawn.py)."""
    # Ctrl-C reaches the whole process group: the parent handles it and stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # MKL reads it as it starts: a thread count of its own choosing per call is one way
    # two runs differ in their last bits (bench/backends/hf.py, fix_arithmetic).
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")
    _serve(conn, backend)
    # Every answer has reached the parent. What the interpreter's teardown prints next is
    # the libraries' own exit noise (triton's nanobind "leaked instances" report), not
    # the user's business: this process's stderr goes nowhere from here on.
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stderr.fileno())


if __name__ == "__main__":
    run_model_process(Connection(int(sys.argv[1])), sys.argv[2])
