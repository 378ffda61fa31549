"""`bench tasks new NAME`: a task pack that validates and runs as it is."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE_ROWS = [
    {
        "question": "Which colour do you get by mixing blue and yellow?",
        "choices": ["green", "red", "purple", "orange"],
        "answer": 0,
    },
    {
        "question": "How many sides does a square have?",
        "choices": ["three", "four", "five", "six"],
        "answer": 1,
    },
    {"question": "What do cows drink?", "choices": ["milk", "water", "juice", "tea"], "answer": 1},
]

YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/test.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

README = """\
# {name}

What it measures: (say what a good score means).
Who wrote it: (you). License: (e.g. CC-BY-4.0). Source: (where the data comes from).

Edit `data/test.jsonl` (one question per line: question, choices, index of the answer)
and `{name}.yaml`, then check it with `bench tasks validate tasks/{name}` and run it with
`bench run --model smollm2-135m-instruct --tasks {name}`.
"""


def new_pack(name: str, root: Path) -> Path:
    if not name.isidentifier():
        raise ValueError(f"task name '{name}' must be letters, digits and _ only")
    folder = root / name
    if folder.exists():
        raise FileExistsError(f"{folder} already exists")
    (folder / "data").mkdir(parents=True)
    (folder / f"{name}.yaml").write_text(YAML.format(name=name))
    (folder / "README.md").write_text(README.format(name=name))
    with (folder / "data" / "test.jsonl").open("w") as handle:
        for row in EXAMPLE_ROWS:
            handle.write(json.dumps(row) + "\n")
    return folder
