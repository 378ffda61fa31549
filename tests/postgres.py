"""A real PostgreSQL server on loopback for the tests (Debian's package, `make services`)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time

from tests.servers import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make services` (apt postgresql)")
    return found[-1]


class PostgresServer:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp")
        self.port = free_port()
        self.url = f"postgresql+psycopg://bench@127.0.0.1:{self.port}/bench"
        # initdb refuses to run as root: as root, the cluster belongs to `postgres`.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True)

    def start(self) -> PostgresServer:
        data = os.path.join(self.dir, "data")
        self._run(_bin("initdb"), "-D", data, "-A", "trust", "-U", "bench", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", data, "-o", options, "-l", f"{self.dir}/log", "-w", "start")
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench", "bench")
        return self

    def fresh_database(self, name: str) -> str:
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench", name)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        data = os.path.join(self.dir, "data")
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
