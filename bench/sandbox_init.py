"""First program of a sandbox process (see bench/sandbox.py): isolates itself, then execs Python.

Run as `python -I -S sandbox_init.py CONFIG_JSON STATUS_FD`, in a new session, with the
untrusted program on stdin. It imports nothing from `bench` (it runs with -I) and reports
what isolation it put in place as one JSON line on STATUS_FD before it execs.
As root: new network and mount namespaces, every mount read-only, a fresh tmpfs on the
(empty) working folder the harness made, the interpreter's folder made reachable, then a
uid of its own with no supplementary groups and no new privileges. Otherwise: a user and
network namespace where the kernel allows unprivileged ones, and the resource limits.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x40000000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_REMOUNT, MS_BIND = 1, 2, 32, 4096
MS_REC, MS_PRIVATE, MNT_DETACH, PR_SET_NO_NEW_PRIVS = 16384, 1 << 18, 2, 38

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            raw = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash as octal.
            points.append(raw.encode().decode("unicode_escape").encode("latin-1").decode())
    return points


def hidden_ancestor(path: str) -> str | None:
    """The topmost folder above `path` that other users cannot enter (e.g. /root, 0700)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def isolate_as_root(uid: int, prefix: str, workdir: str, tmpfs_bytes: int) -> None:
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Read-only everywhere: root could write through permissions, and /tmp is world-writable.
    for point in mount_points():
        try:
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        except OSError:
            # Flags locked by an outer namespace (some /proc and /sys submounts): those
            # filesystems are not writable by the sandbox's uid anyway.
            if point == "/":
                raise
    # The working folder (empty, made by the harness) becomes its only writable place.
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID, f"size={tmpfs_bytes},mode=0700")
    hidden = hidden_ancestor(prefix)
    if hidden:
        # The interpreter lives under a folder only root may enter (pyenv under /root):
        # show the sandbox that folder as an empty tmpfs holding only the interpreter.
        stage = os.path.join(workdir, ".interpreter")
        os.mkdir(stage)
        mount(prefix, stage, None, MS_BIND | MS_REC)
        mount("tmpfs", hidden, "tmpfs", MS_NOSUID, "size=1m,mode=0755")
        os.makedirs(prefix, mode=0o755)
        mount(stage, prefix, None, MS_BIND | MS_REC)
        mount(None, prefix, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        _check(libc.umount2(stage.encode(), MNT_DETACH), "umount")
        os.rmdir(stage)
        mount(None, hidden, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    os.chown(workdir, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # a uid of its own: cannot signal the harness, NPROC counts only its own
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("setuid did not take")


def limit(limits: dict) -> None:
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def main() -> None:
    config = json.loads(sys.argv[1])
    status = int(sys.argv[2])
    workdir = config["workdir"]
    done: dict[str, object] = {}
    try:
        if os.geteuid() == 0:
            uid = config["uid_base"] + os.getpid()
            isolate_as_root(uid, config["prefix"], workdir, config["limits"]["tmpfs_bytes"])
            done.update(network=True, filesystem=True, uid=uid)
        else:
            done.update(network=libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)
            done.update(filesystem=False, uid=None)
        os.chdir(workdir)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
        limit(config["limits"])
    except Exception as err:  # the harness fails the sample and raises: the sandbox is broken
        os.write(status, json.dumps({"error": f"{type(err).__name__}: {err}"}).encode())
        os._exit(86)
    os.write(status, json.dumps(done).encode())
    os.close(status)
    python = config["python"]
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    os.execve(python, [python, "-I", "-S", "-B", "-"], env)


if __name__ == "__main__":
    main()
