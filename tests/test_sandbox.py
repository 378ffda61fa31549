"""The sandbox that runs model-written code: HumanEval's canonical solutions pass 164/164,
and hostile completions fail their sample without harming the harness (this process).

Hostile completions are the hostile act followed by the canonical solution, so a sample
passes exactly when the act went unhindered: a contained act is one that fails the sample.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path

import pytest

from bench import sandbox
from bench.catalog import humaneval
from tests.conftest import REPO

PROBLEMS = humaneval.problems()
DOC = PROBLEMS[0]
FULL = sandbox.run_python("pass").isolation
needs_root = pytest.mark.skipif(
    not FULL.get("filesystem"),
    reason=f"filesystem, network and uid isolation need root here; the sandbox reports {FULL}",
)
needs_pid_namespace = pytest.mark.skipif(
    not FULL.get("pid_namespace"),
    reason=f"this machine gives the sandbox no PID namespace; the sandbox reports {FULL}",
)


def hostile(act: str) -> str:
    """A completion that does `act` when the tests call it, then solves the problem."""
    body = "".join(f"    {line}\n" for line in act.strip().splitlines())
    return body + DOC["canonical_solution"]


def live_processes(uid: int) -> list[int]:
    """Processes (not zombies) that run as the sandbox's uid."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(int(status.parent.name))
    return found


def test_canonical_solutions_pass_164_of_164():
    assert len(PROBLEMS) == 164
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(
            pool.map(lambda p: humaneval.run_completion(p, p["canonical_solution"]), PROBLEMS)
        )
    failed = [
        (p["task_id"], o.status, o.output[-300:]) for p, o in zip(PROBLEMS, outcomes, strict=True)
    ]
    failed = [f for f in failed if f[1] != "passed"]
    assert failed == []


def test_wrong_completion_fails_and_output_is_kept():
    outcome = humaneval.run_completion(DOC, "    return 'wrong'\n")
    assert outcome.status == "failed" and outcome.returncode != 0
    assert "AssertionError" in outcome.output


def test_pass_at_k_is_the_unbiased_estimator():
    # Brute force: the share of k-subsets of n samples with at least one that passed.
    for n, c, k in [(5, 2, 2), (10, 3, 4), (6, 0, 3), (4, 4, 1), (7, 1, 7)]:
        subsets = list(combinations([True] * c + [False] * (n - c), k))
        assert humaneval.pass_at_k(n, c, k) == pytest.approx(
            sum(any(s) for s in subsets) / len(subsets)
        )


def test_score_counts_passing_samples():
    canonical = DOC["canonical_solution"]
    scores = humaneval.score(DOC, [canonical, "    return None\n", canonical])
    assert scores == pytest.approx({"pass@1": 2 / 3, "pass@3": 1.0})


def short(completion: str) -> sandbox.Outcome:
    """Run a completion with a 3 s wall clock (for acts that never end by themselves)."""
    return sandbox.run_python(humaneval.program(DOC, completion), sandbox.Limits(wall_s=3))


def test_infinite_loop_times_out():
    outcome = short(hostile("while True:\n    pass"))
    assert outcome.status == "timeout" and not outcome.passed


def test_cpu_limit_stops_a_busy_program_before_the_wall_clock():
    outcome = sandbox.run_python("while True:\n    pass\n", sandbox.Limits(wall_s=60, cpu_s=1))
    assert outcome.status == "failed"
    assert outcome.returncode in (-signal.SIGKILL, -signal.SIGXCPU)


def test_memory_bomb_fails():
    for act in ("x = bytearray(1 << 34)", "x = []\nwhile True:\n    x.append(bytearray(1 << 26))"):
        outcome = humaneval.run_completion(DOC, hostile(act))
        assert not outcome.passed, act
        assert "MemoryError" in outcome.output or outcome.returncode < 0


def test_big_file_is_cut_by_the_file_size_limit():
    act = "open('big', 'wb').write(b'x' * (64 << 20))"
    outcome = humaneval.run_completion(DOC, hostile(act))
    assert not outcome.passed


@needs_root
def test_fork_bomb_is_capped_and_leaves_no_process():
    # Every process forks forever and none ends, so each "+" (one per child born) is a
    # process alive at the end: the count is the tree's size.
    act = (
        "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n"
        "            os.write(1, b'+')\n    except OSError:\n        pass"
    )
    outcome = short(hostile(act))
    assert outcome.status == "timeout"
    assert 0 < outcome.output.count("+") < sandbox.Limits().processes
    assert live_processes(outcome.isolation["uid"]) == []
    subprocess.run(["true"], check=True)  # the harness can still start processes


def test_memory_spread_over_children_kills_the_tree():
    """Six children of 100 MB each, each below the per-process limit, together above it."""
    # Each call of the completion starts six, waits until all six hold their memory, and
    # ends them: unhindered, the sample passes.
    act = (
        "import os, signal\nready, hold = os.pipe(), os.pipe()\nkids = []\n"
        "for _ in range(6):\n    kid = os.fork()\n    if kid == 0:\n"
        "        block = b'x' * (100 << 20)\n"
        "        os.write(ready[1], b'+')\n        os.read(hold[0], 1)\n"
        "    kids.append(kid)\n"
        "got = b''\nwhile len(got) < 6:\n    got += os.read(ready[0], 6)\n"
        "print('all six hold their memory')\nfor kid in kids:\n"
        "    os.kill(kid, signal.SIGKILL)\n    os.waitpid(kid, 0)\n"
        "for fd in ready + hold:\n    os.close(fd)"
    )
    limits = sandbox.Limits(memory_bytes=256 << 20, wall_s=30)
    outcome = sandbox.run_python(humaneval.program(DOC, hostile(act)), limits)
    assert outcome.status == "failed" and outcome.returncode == -signal.SIGKILL
    assert "all six" not in outcome.output
    assert "together used more than 268435456 bytes of memory" in outcome.output
    if outcome.isolation["uid"] is not None:
        assert live_processes(outcome.isolation["uid"]) == []


@needs_pid_namespace
def test_proc_shows_only_the_sandboxs_own_processes():
    secret = f"bench-secret-{uuid.uuid4().hex}"
    # Another process, with a secret on its command line, and the harness itself.
    holder = [sys.executable, "-c", "import sys; sys.stdin.read()", secret]
    with subprocess.Popen(holder, stdin=subprocess.PIPE) as other:
        act = (
            "import os\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n"
            "        print('pid', p, open(f'/proc/{p}/cmdline', 'rb').read())"
        )
        outcome = humaneval.run_completion(DOC, hostile(act))
        other.kill()
    assert outcome.passed
    assert secret not in outcome.output and "pytest" not in outcome.output
    seen = [line.split()[1] for line in outcome.output.splitlines() if line.startswith("pid ")]
    # Its own pid 2 (under the sandbox's init, pid 1, which only root may see).
    assert "2" in seen and set(seen) <= {"1", "2"}
    assert str(other.pid) not in seen and str(os.getpid()) not in seen


@needs_root
def test_setsid_escapee_is_killed_too():
    act = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
        "while True:\n    pass"
    )
    outcome = short(hostile(act))
    assert outcome.status == "timeout"
    assert live_processes(outcome.isolation["uid"]) == []


@needs_root
@pytest.mark.parametrize("where", ["tmp", "repo", "home"])
def test_writing_outside_its_folder_fails_and_leaves_no_file(where):
    folder = {"tmp": Path("/tmp"), "repo": REPO, "home": Path.home()}[where]
    target = folder / f"bench-escape-{uuid.uuid4().hex}"
    outcome = humaneval.run_completion(DOC, hostile(f"open({str(target)!r}, 'w').write('x')"))
    assert not outcome.passed
    assert not target.exists()


@needs_root
def test_opening_a_socket_fails():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        act = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).close()"
        outcome = humaneval.run_completion(DOC, hostile(act))
        assert not outcome.passed
        assert "Network is unreachable" in outcome.output
        with pytest.raises(TimeoutError):
            listener.accept()


@needs_root
@pytest.mark.parametrize(
    "act",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)",
        f"import os, signal\nos.killpg({os.getpgid(0)}, signal.SIGKILL)",
    ],
    ids=["parent", "harness-pid", "harness-group"],
)
def test_killing_the_harness_fails_and_it_keeps_running(act):
    outcome = humaneval.run_completion(DOC, hostile(act))
    assert not outcome.passed
    # In its own PID namespace the harness has no pid at all: ProcessLookupError.
    assert "PermissionError" in outcome.output or "ProcessLookupError" in outcome.output
    time.sleep(0.1)  # a signal, had it been sent, would have arrived by now
    os.kill(os.getpid(), 0)  # still here
