"""Real model servers on loopback, started and stopped by test fixtures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process in its own process group; `url` is its /v1 base."""

    def __init__(self, command: list[str], port: int, log: Path, ready_s: float = 300):
        self.command, self.port, self.log, self.ready_s = command, port, log, ready_s
        self.url = f"http://127.0.0.1:{port}/v1"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        return self.launch().ready()

    def launch(self) -> Server:
        """Start the process without waiting for it to serve (see ready())."""
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
        self._launched = time.monotonic()
        return self

    def ready(self) -> Server:
        """Wait until the launched server answers, at most ready_s from its launch."""
        deadline = self._launched + self.ready_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not ready in {self.ready_s} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def vllm_server(model_dir: Path, log: Path) -> Server:
    return Server(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_dir),
            "--port",
            str(port := free_port()),
            "--dtype",
            "float32",
            "--gpu-memory-utilization",
            "0.3",
            "--enforce-eager",
            "--max-model-len",
            "2048",
        ],
        port,
        log,
        ready_s=600,  # booting beside other runs on two cores (test_backends.py)
    )


def llamacpp_server(gguf: Path, log: Path, port: int | None = None) -> Server:
    port = port or free_port()
    # interrupt_requests=false: by default a new request aborts the one in progress.
    return Server(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--interrupt_requests",
            "false",
        ],
        port,
        log,
        ready_s=120,
    )
