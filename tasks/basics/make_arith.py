"""Writes data/arith_*.jsonl: seeded two-operand arithmetic questions (the pack's own data).

Run `python make_arith.py` to regenerate; the seed keeps the files identical.
"""

import json
import random
from pathlib import Path


def make(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        op = rng.choice("+-*")
        a, b = (
            (rng.randint(2, 9), rng.randint(2, 9))
            if op == "*"
            else (rng.randint(1, 20), rng.randint(1, 20))
        )
        if op == "-" and b > a:
            a, b = b, a
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        rows.append({"question": f"What is {a} {op} {b}?", "answer": str(answer)})
    return rows


if __name__ == "__main__":
    rng = random.Random(20261124)
    out = Path(__file__).parent / "data"
    for split, n in (("train", 5), ("test", 40)):
        with (out / f"arith_{split}.jsonl").open("w") as handle:
            for row in make(rng, n):
                handle.write(json.dumps(row) + "\n")
