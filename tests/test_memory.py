"""A run's memory follows its data: rows of megabytes cost about their size, not a copy
(or a tokenization) per request.

The same multiple-choice task runs twice, once with a passage of 4 MB in each row and
once with one of 2 KB; the passage is in the prompt, which the model (max_length=128)
reads only the end of. The peak resident memory of the run's processes (the model
process is the largest) may grow by a few times the data, not by a copy per choice.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

ROWS = 3
BIG = 4 * 2**20  # characters of passage per row
SMALL = 2 * 2**10
MIB = 2**20

TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {name}.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: "{{{{passage}}}}\\nQuestion: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
"""

# Runs bench and prints the largest resident memory of any of its processes (bytes).
MEASURE = """\
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "bench.launch", *sys.argv[1:]])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.exit(done.returncode)
"""


def write_task(folder: Path, name: str, chars: int) -> None:
    folder.mkdir(parents=True)
    (folder / f"{name}.yaml").write_text(TASK.format(name=name))
    words = "alpha beta gamma delta river stone cloud paper seven orange window garden".split()
    # Different text per row, so that no row is a copy of another.
    rows = []
    for i in range(ROWS):
        text = " ".join(words[(i + j) % len(words)] + str(j % 97) for j in range(chars // 8))
        rows.append(
            {
                "passage": text[:chars],
                "question": f"Is {i} even?",
                "choices": ["yes", "no", "maybe", "never"],
                "answer": i % 2,
            }
        )
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def peak_rss(tmp_path: Path, name: str, chars: int) -> int:
    folder = tmp_path / name
    write_task(folder, name, chars)
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, "run", "--model", "smollm2-135m-instruct"]
        + ["--tasks", name, "--include-path", str(folder), "--model-args", "max_length=128"]
        + ["--store", f"sqlite:///{tmp_path / name}.db", "--no-cache"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_rows_of_megabytes_cost_their_size_not_a_copy_per_request(smollm2_dir, tmp_path):
    small = peak_rss(tmp_path, "mem_small", SMALL)
    big = peak_rss(tmp_path, "mem_big", BIG)
    data = ROWS * BIG
    # The passages reach the model process once (pickled, then as strings) beside the
    # model (+7 MiB here). Before, each of the 12 requests kept the tokens of its whole
    # passage, after a tokenization that takes 100+ bytes per character (+1.6 GiB).
    assert big - small <= 4 * data + 64 * MIB, (big - small) / MIB
