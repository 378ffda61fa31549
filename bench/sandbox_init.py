"""First program of a sandbox process (see bench/sandbox.py): isolates itself, then runs Python.

Run as `python -I -S sandbox_init.py CONFIG_JSON STATUS_FD`, in a new session, with the
untrusted program on stdin. It imports nothing from `bench` (it runs with -I) and reports
what isolation it put in place as one JSON line on STATUS_FD just before the program starts.

Three processes, one job each:
- the launcher (this process, outside every namespace) joins the run's cgroup if the harness
  made one, makes the namespaces and mounts, forks, and then supervises: it is the subreaper
  of the whole tree, kills the tree when its total memory or process count passes the limits
  (where no cgroup does that), on SIGTERM (the harness's timeout), and when the program ends;
  then it exits the way the program did.
- the init (pid 1 of a new PID namespace, where there is one) mounts a /proc that shows only
  the sandbox's processes, reaps orphans, and relays the program's exit status; when it
  exits the kernel kills whatever is left in the namespace.
- the program drops to its own uid (as root), sets the resource limits and execs Python.

As root: new network, mount and PID namespaces, every mount read-only, a fresh tmpfs on the
(empty) working folder the harness made, the interpreter's folder made reachable, then a
uid of its own with no supplementary groups and no new privileges. Otherwise: user, network,
mount and PID namespaces where the kernel allows unprivileged ones, and the resource limits.
"""

import ctypes
import json
import os
import resource
import select
import signal
import sys

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x40000000, 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE, MNT_DETACH = 16384, 1 << 18, 2
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 36, 38
POLL_S = 0.05  # how often the supervisor measures the tree (no cgroup)
MEMORY_NOTE = "sandbox: killed: its processes together used more than {} bytes of memory"
PROCESS_NOTE = "sandbox: killed: it ran more than {} processes"

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


def prepare(config: dict) -> dict:
    """The launcher's part: cgroup, namespaces, mounts. Returns the isolation in place."""
    done: dict = {"tree_limits": "supervisor"}
    if config["cgroup"]:
        try:  # before any fork, so that every process of the sandbox is born inside it
            with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as procs:
                procs.write(str(os.getpid()))
            done["tree_limits"] = "cgroup"
        except OSError:
            pass  # the supervisor bounds the tree instead
    # Orphans come to the launcher, not to the system's init: no process leaves the tree.
    _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
    # Mirroring a crash of the program (kill itself with its signal) must not dump a core.
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl")
    if os.geteuid() == 0:
        uid = config["uid_base"] + os.getpid()
        isolate_as_root(uid, config["prefix"], config["workdir"], config["limits"]["tmpfs_bytes"])
        done.update(network=True, filesystem=True, uid=uid)
        done["pid_namespace"] = libc.unshare(CLONE_NEWPID) == 0
        # RLIMIT_NPROC counts the processes of the sandbox's uid: the program's alone.
        done["nproc_extra"] = 0
    else:
        own = CLONE_NEWUSER | CLONE_NEWNET
        done.update(filesystem=False, uid=None)
        done["pid_namespace"] = libc.unshare(own | CLONE_NEWNS | CLONE_NEWPID) == 0
        done["network"] = done["pid_namespace"] or libc.unshare(own) == 0
        # RLIMIT_NPROC counts the tasks of the sandbox's user namespace (launcher and init
        # included); without one, every task of this user: those now running are added, or
        # a fork bomb would starve the supervisor of CPU before its first measurement.
        extra = 1 + done["pid_namespace"] if done["network"] else tasks_of(os.getuid())
        done["nproc_extra"] = extra
    return done


def tasks_of(uid: int) -> int:
    """How many tasks (threads, as RLIMIT_NPROC counts them) run as `uid` now."""
    count = 0
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, ValueError, KeyError):
            continue  # not a process, or gone meanwhile
    return count


def limit(limits: dict, nproc_extra: int) -> None:
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NPROC", limits["processes"] + nproc_extra),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def report_error(status: int, err: Exception) -> None:
    os.write(status, json.dumps({"error": f"{type(err).__name__}: {err}"}).encode())
    sys.exit(86)  # in a forked child too: nothing here catches SystemExit


def start_program(config: dict, status: int, done: dict) -> None:
    """The program's part: its uid, its limits, then exec. Never returns."""
    workdir = config["workdir"]
    try:
        uid = done["uid"]
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)  # a uid of its own: cannot signal the harness or the launcher
            if os.getuid() != uid or os.geteuid() != uid:
                raise OSError("setuid did not take")
        os.chdir(workdir)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
        limit(config["limits"], done.pop("nproc_extra"))
    except Exception as err:  # the harness fails the sample and raises: the sandbox is broken
        report_error(status, err)
    os.write(status, json.dumps(done).encode())
    os.close(status)
    python = config["python"]
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    os.execve(python, [python, "-I", "-S", "-B", "-"], env)


def run_init(config: dict, status: int, done: dict, relay: int) -> None:
    """pid 1 of the sandbox's PID namespace. Never returns."""
    try:
        # A mount namespace of its own: the launcher keeps the outer /proc, to measure the tree.
        _check(libc.unshare(CLONE_NEWNS), "unshare")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        # hidepid=2: the program (its own uid) does not even see this init (root).
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    except OSError:
        done["pid_namespace"] = False  # processes die with the init, but /proc shows all
    program = os.fork()
    if program == 0:
        os.close(relay)
        start_program(config, status, done)
    os.close(status)
    while True:  # reap every orphan until the program itself exits
        pid, wait_status = os.waitpid(-1, 0)
        if pid == program:
            os.write(relay, str(wait_status).encode())
            sys.exit(0)  # the kernel now kills the rest of the namespace


class Supervisor:
    """The launcher after the fork: waits for its child and keeps the tree within limits."""

    def __init__(self, child: int, pid_namespace: bool, limits: dict | None) -> None:
        self.child, self.pid_namespace, self.limits = child, pid_namespace, limits
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.wait_status: int | None = None  # the child's, once reaped

    def tree(self) -> dict[int, int]:
        """Every process below the launcher: pid -> resident bytes."""
        parents, rss = {}, {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            pid = int(name)
            parents.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * self.page
        found, todo = {}, [os.getpid()]
        while todo:
            for pid in parents.get(todo.pop(), ()):
                found[pid] = rss[pid]
                todo.append(pid)
        return found

    def kill_tree(self) -> None:
        if self.pid_namespace:  # the init's death takes the whole namespace with it
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        try:  # one atomic kill for all that stayed in the program's process group
            os.killpg(self.child, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(1000):  # then each that left it (setsid), until none is left
            tree = self.tree()
            if not tree:
                return
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.reap()
            select.select([], [], [], 0.005)

    def reap(self) -> None:
        """Reap every finished process, keeping the child's wait status."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.wait_status = wait_status

    def over_limits(self) -> str | None:
        tree = self.tree()
        # The init (pid 1) is not the program's; the program and all it started are.
        count = len(tree) - self.pid_namespace
        if sum(tree.values()) > self.limits["memory_bytes"]:
            return MEMORY_NOTE.format(self.limits["memory_bytes"])
        if count > self.limits["processes"]:
            return PROCESS_NOTE.format(self.limits["processes"])
        return None

    def run(self) -> int:
        """Until the child ends; returns its wait status."""
        wake = select.poll()
        try:  # wakes the moment the child ends (Linux 5.3 and later)
            wake.register(os.pidfd_open(self.child), select.POLLIN)
            timeout_ms = POLL_S * 1000 if self.limits else None
        except OSError:
            timeout_ms = POLL_S * 1000
        watch = bool(self.limits)
        self.reap()
        while self.wait_status is None:
            wake.poll(timeout_ms)
            if watch and (note := self.over_limits()):
                os.write(1, f"\n{note}\n".encode())
                self.kill_tree()
                watch = False
            self.reap()
        if not self.pid_namespace:  # what the program left behind (daemons, setsid escapees)
            self.kill_tree()
        return self.wait_status


def exit_like(wait_status: int) -> None:
    """End this process the way the program ended (exit code or signal)."""
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(wait_status) if os.WIFEXITED(wait_status) else 1)


def main() -> None:
    config = json.loads(sys.argv[1])
    status = int(sys.argv[2])
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        done = prepare(config)
    except Exception as err:  # the harness fails the sample and raises: the sandbox is broken
        report_error(status, err)
    relay_r, relay_w = os.pipe()  # the init's word on how the program ended
    # SIGTERM waits until its handler (below) can end the whole tree.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    child = os.fork()
    if child == 0:
        os.close(relay_r)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if done["pid_namespace"]:
            run_init(config, status, done, relay_w)
        os.close(relay_w)
        # A process group of its own, so that the launcher can kill it at once; the harness
        # kills it too, should the launcher die first.
        os.setpgid(0, 0)
        done["group"] = os.getpid()
        start_program(config, status, done)
    if not done["pid_namespace"]:
        try:  # also here, so that no kill comes before the child's own call
            os.setpgid(child, child)
        except OSError:
            pass  # the child has already made it (and exec'd), or has died
    os.close(status)
    os.close(relay_w)
    watch = None if done["tree_limits"] == "cgroup" else config["limits"]
    supervisor = Supervisor(child, done["pid_namespace"], watch)
    # The harness's timeout: end the tree here, where its every process is known.
    signal.signal(signal.SIGTERM, lambda *_: supervisor.kill_tree())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    wait_status = supervisor.run()
    if done["pid_namespace"]:
        relayed = os.read(relay_r, 64)
        # Nothing relayed: the init itself was killed (limits, timeout) and the program too.
        wait_status = int(relayed) if relayed else wait_status
    exit_like(wait_status)


if __name__ == "__main__":
    main()
