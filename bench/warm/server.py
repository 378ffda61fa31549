"""The warm process: imports once, then forks a child for each `bench` command.

Three kinds of process (see bench/warm/__init__.py):

- the warm process: imports, then accepts connections until it has been idle for
  `idle_s`; for each, it forks a supervisor and goes back to waiting;
- the supervisor: receives the request and the client's standard streams, forks the
  command's process (its own process group), tells the client that group, and reports
  the exit code; if the client goes away first, it stops the group;
- the command's process: takes the client's streams, directory, environment and
  arguments, and runs `bench.launch.start_here` as a cold start would, to its exit.

start() runs it, detached.
"""

from __future__ import annotations

import atexit
import gc
import io
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.warm.client import HEADER, socket_path, warm_dir


def preimport() -> None:
    """What commands spend their start-up importing: bench's side of a run (the CLI's
    libraries, lm-eval's tasks, datasets, the store) and the model process's (torch,
    transformers, lm-eval's HF class, sympy, which the model's meta-device set-up
    imports). Nothing is run: no model, no task, no store."""
    import lm_eval.tasks  # noqa: F401
    import rich.progress  # noqa: F401
    import sympy  # noqa: F401
    import typer  # noqa: F401

    import bench.api  # noqa: F401
    import bench.backends.openai  # noqa: F401
    import bench.backends.process  # noqa: F401
    import bench.catalog.loader  # noqa: F401
    from bench.backends import import_backend

    try:
        import_backend("hf")  # never torch.cuda: a CUDA context does not survive a fork
    except Exception:  # noqa: BLE001 - a command that needs it fails as it would cold
        pass
    else:
        _prepare_model_loads()
    # What exists now is shared with every child: keep the collector off those pages.
    gc.collect()
    gc.freeze()


def _prepare_model_loads() -> None:
    """What every hf model load of a shipped pack does first, done once here: import its
    architecture's modules, and build transformers' table of weight renamings (~900
    regular expressions, 0.3 s), which it caches for the process."""
    import importlib
    import json

    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    from bench.backends import lean_transformers
    from bench.models.packs import PACKS, is_materialized, pack_dir

    get_checkpoint_conversion_mapping("llama")
    with lean_transformers():
        # imported by the load itself: the meta-device set-up's, the tokenizer's
        import torch.fx.experimental.symbolic_shapes  # noqa: F401
        import torch.utils._device  # noqa: F401
        import transformers.models.auto.tokenization_auto  # noqa: F401
        import transformers.tokenization_utils_sentencepiece  # noqa: F401

        for name in PACKS:
            config = pack_dir(name) / "config.json"
            if is_materialized(name) and config.is_file():
                kind = json.loads(config.read_text()).get("model_type", "")
                try:
                    importlib.import_module(f"transformers.models.{kind}.modeling_{kind}")
                except ImportError:
                    pass


def serve(idle_s: float, env: dict[str, str]) -> dict | None:
    """Serve commands from environment `env` until idle; returns only in a command's
    process, with its request."""
    path = socket_path(env)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    listener.bind(str(staging))
    listener.listen(16)
    listener.settimeout(idle_s)
    staging.rename(path)  # clients see the socket only now, ready to serve
    path.with_suffix(".pid").write_text(str(os.getpid()))
    me = os.getpid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return None
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                listener.close()
                return _supervise(conn)
            conn.close()
    finally:
        pid_file = path.with_suffix(".pid")
        # Not another warm process's: one started since may have taken the name over.
        if os.getpid() == me and pid_file.exists() and pid_file.read_text() == str(me):
            path.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)


def _supervise(conn: socket.socket) -> dict:
    """In the supervisor: start the command's process; returns only in that process."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError, struct.error):  # a probe (start()'s), or a broken client
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        conn.close()
        os.setpgid(0, 0)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        return request
    try:
        os.setpgid(pid, pid)  # also here, so the client never signals a group not yet made
    except (PermissionError, ProcessLookupError):
        pass
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"pgid {pid}\n".encode())
        code = _wait(pid, conn)
        conn.sendall(f"exit {code}\n".encode())
    except OSError:
        pass
    finally:
        os._exit(0)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    (size,) = HEADER.unpack(data[: HEADER.size])
    data = data[HEADER.size :]
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("the client went away while sending its request")
        data += chunk
    return json.loads(data), fds


def _wait(pid: int, conn: socket.socket) -> int:
    """The command's exit code, as a shell reports it (128 + N for signal N); if the
    client goes away first, the command's group is stopped as Ctrl-C would stop it."""
    process = os.pidfd_open(pid)
    client_gone = False
    while True:
        ready, _, _ = select.select([process] + ([] if client_gone else [conn]), [], [])
        if conn in ready and not conn.recv(1):
            client_gone = True
            try:
                os.killpg(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        if process in ready:
            status = os.waitpid(pid, 0)[1]
            if os.WIFEXITED(status):
                return os.WEXITSTATUS(status)
            return 128 + os.WTERMSIG(status)


def run_command(request: dict, env_at_start: dict[str, str]) -> None:
    """In the command's process: become the client's `bench` command and run it."""
    os.chdir(request["cwd"])
    # The client's environment, with what the imports set in it (as in a cold start).
    imported = {k: v for k, v in os.environ.items() if env_at_start.get(k) != v}
    dropped = env_at_start.keys() - os.environ.keys()
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(imported)
    for name in dropped:
        os.environ.pop(name, None)
    sys.argv = request["argv"]
    sys.path[0] = request["path0"]
    _reopen_standard_streams()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)
    from bench.backends import spawn
    from bench.launch import start_here
    from bench.trace import mark

    mark("warm_command")
    spawn.fork_model_processes()
    code = 0
    try:
        start_here()
    except SystemExit as done:
        code = _exit_code(done.code)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - reported as the interpreter reports it
        sys.excepthook(*sys.exc_info())
        code = 1
    finally:
        # The interpreter's own exit would also tear down every module imported here
        # (torch's among them): 0.2 s for nothing. Its exit work that matters runs here.
        threading._shutdown()  # joins the command's non-daemon threads, as at exit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _exit_code(code: object) -> int:
    """What the interpreter makes of sys.exit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _reopen_standard_streams() -> None:
    """sys.stdin/stdout/stderr over the client's streams, buffered as Python buffers its
    own: line by line on a terminal, in blocks otherwise; stderr always by line."""
    encoding = sys.stdout.encoding
    streams = []
    for fd, mode in ((0, "rb"), (1, "wb"), (2, "wb")):
        raw = io.FileIO(fd, mode, closefd=False)
        tty = raw.isatty()
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        streams.append(
            io.TextIOWrapper(
                buffered,
                encoding=encoding,
                errors="backslashreplace" if fd == 2 else sys.stdout.errors,
                line_buffering=fd == 2 or (fd == 1 and tty),
            )
        )
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams


def start(idle_s: float = 1800.0, timeout_s: float = 180.0) -> Path:
    """Start a warm process for this environment (detached; it ends after idle_s without
    a command) and wait until it serves; its socket path. One already there is kept."""
    path = socket_path()
    if path.exists() and _serving(path):
        return path
    folder = warm_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            # -c, not -m: then commands see a __main__ without a module spec, as `bench`
            # gives them (click names the program after it)
            [sys.executable, "-c", "from bench.warm.server import main; main()", str(idle_s)],
            cwd=folder,  # not the caller's folder: its files must not shadow modules
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and _serving(path)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the warm process did not start (log {log}):\n{tail}")
        time.sleep(0.1)
    return path


def _serving(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(path))
        return True
    except OSError:
        return False


def stop() -> int:
    """Stop every warm process under warm_dir(); how many were running."""
    stopped = 0
    for pid_file in warm_dir().glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            stopped += 1
        except (ValueError, ProcessLookupError, PermissionError):
            pid_file.unlink(missing_ok=True)
    return stopped


def main() -> None:
    env_at_start = dict(os.environ)  # what the key is over: imports may add to it
    preimport()
    request = serve(float(sys.argv[1]), env_at_start)
    if request is not None:
        run_command(request, env_at_start)  # exits the way the cold command does


if __name__ == "__main__":
    main()
