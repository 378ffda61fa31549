"""`vs_lm_eval.py --workload large`: bench, the lm_eval CLI and the raw backend on a
generated workload of the size issue 25 measured (1,000 3-shot multiple-choice documents
with four multi-token choices, 200 short generations).

Each round runs, alternating the order (bench, lm_eval, raw; then the reverse):
- `bench run` (fresh store, --no-cache) and the `lm_eval` CLI (--log_samples, needed for
  the per-sample comparison) on the SmolLM2 pack, hf backend, float32, same batch size,
  each in a fresh process, on a task pack written by benchmarks/large_tasks.py;
- the raw backend (benchmarks/raw_replay.py): plain transformers in this process, the
  model loaded before the rounds, doing the forward passes bench's hf backend needs for
  lm_eval's very requests.

Prints the wall times and ratios (target: bench >= 3x faster than lm_eval; bench within
10% of raw), both scores side by side, per-sample agreement (log-likelihoods within 1e-4;
acc flips only on near ties, each listed) and the tokens each side puts through the model.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from common import (
    PACK,
    bench_run_cmd,
    bench_scores,
    bench_table,
    lm_eval_run_cmd,
    lm_eval_scores,
    load_average,
    median,
    pack_dir,
    print_scores,
    timed,
)
from large_samples import (
    LL_TOLERANCE,
    Agreement,
    bench_samples,
    choice_lengths,
    compare,
    lm_eval_requests,
    lm_eval_samples,
)
from large_tasks import LargePack, write_pack
from raw_replay import RawModel, RawTimes, choice_counts

SHOWN_FLIPS = 40  # flips listed in full; the rest are counted


def run_large(args) -> None:
    if min(args.docs, args.gens, args.rounds) < 1:
        print("error: --docs, --gens and --rounds must be at least 1", file=sys.stderr)
        sys.exit(2)
    model_dir = pack_dir(PACK)
    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    pack = write_pack(work / "tasks", args.docs, args.gens)
    tasks = ",".join(pack.tasks)
    print(
        f"large workload: {pack.docs} multiple-choice docs (4 choices, 3-shot) + {pack.gens} "
        f"generations (3-shot, <= 16 tokens), {PACK}, hf, float32, batch {args.batch_size}"
    )
    print(f"task pack {pack.folder}; before: {load_average()}")
    raw = RawModel(model_dir, "float32", args.batch_size)

    walls: dict[str, list[float]] = {"bench": [], "lm_eval": [], "raw": []}
    bench_model_s: list[tuple[float, float]] = []  # (choice, gen) seconds bench recorded
    raw_runs: list[RawTimes] = []
    stores, outs = [], []
    requests = None
    for round_ in range(args.rounds):
        store = f"sqlite:///{work / f'bench-{round_}.db'}"
        out = work / f"lm_eval-{round_}"
        order = ["bench", "lm_eval", "raw"]
        for name in order if round_ % 2 == 0 else reversed(order):
            if name == "bench":
                wall = timed(bench_run_cmd(tasks, store, args.batch_size, include=pack.folder))
            elif name == "lm_eval":
                cmd = lm_eval_run_cmd(
                    model_dir, tasks, pack.folder, out, args.batch_size, log_samples=True
                )
                wall = timed(cmd, cwd=pack.folder)
            else:
                # lm_eval's requests, from the first round's samples (it ran before).
                requests = requests or lm_eval_requests(outs[0], pack.choice_task, pack.gen_task)
                raw_runs.append(raw.replay(*requests))
                wall = raw_runs[-1].choice_s + raw_runs[-1].gen_s
            walls[name].append(wall)
            print(f"round {round_ + 1}: {name:8s} {wall:8.2f} s")
            if name == "lm_eval":
                outs.append(out)
        stores.append(store)
        bench_model_s.append(recorded_seconds(bench_table(store, "samples"), pack))
        if bench_scores(store) != bench_scores(stores[0]):
            print(f"round {round_ + 1}: bench's scores differ from round 1 (nondeterminism)")
        if lm_eval_scores(out) != lm_eval_scores(outs[0]):
            print(f"round {round_ + 1}: lm_eval's scores differ from round 1 (nondeterminism)")
    print(f"after: {load_average()}")

    print_times(walls, bench_model_s, raw_runs)
    lengths = choice_lengths(outs[0], pack.choice_task)
    theirs = lm_eval_samples(outs[0], pack.choice_task, pack.gen_task)
    agreement = compare(
        theirs, bench_samples(bench_table(stores[0], "samples"), *pack.tasks), lengths
    )
    ok = print_agreement(bench_scores(stores[0]), lm_eval_scores(outs[0]), agreement)
    print_tokens(raw, requests, raw_runs[0], bench_table(stores[0], "samples"), pack)
    print_raw_check(theirs, requests, raw_runs[0])
    if not ok:
        sys.exit(1)


def recorded_seconds(samples: list[dict], pack: LargePack) -> tuple[float, float]:
    """Seconds bench's backend recorded for its model batches, per task: each document's
    share of its batches, summed (one filter per task here; a doc counts once)."""
    seen, totals = set(), {pack.choice_task: 0.0, pack.gen_task: 0.0}
    for row in samples:
        if (row["task"], row["doc_id"]) not in seen:
            seen.add((row["task"], row["doc_id"]))
            totals[row["task"]] += row["wall_s"]
    return totals[pack.choice_task], totals[pack.gen_task]


def print_times(walls, bench_model_s, raw_runs: list[RawTimes]) -> None:
    bench, lm, raw = (median(walls[n]) for n in ("bench", "lm_eval", "raw"))
    print(
        f"\nmedian wall: bench {bench:.2f} s, lm_eval {lm:.2f} s -> lm_eval / bench = "
        f"{lm / bench:.2f}x (target: >= 3x)"
    )
    print("  each a whole CLI run: start-up, model load, tasks, requests, metrics, results")
    choice = median([r.choice_s for r in raw_runs])
    gen = median([r.gen_s for r in raw_runs])
    print(
        f"raw backend (the same unique forward passes, plain transformers): multiple choice "
        f"{choice:.2f} s + generations {gen:.2f} s = {raw:.2f} s"
    )
    print(
        f"bench's whole run over raw: {bench / raw:.3f}x ({(bench / raw - 1) * 100:+.1f}%; "
        "target: within 10%)"
    )
    b_choice = median([c for c, _ in bench_model_s])
    b_gen = median([g for _, g in bench_model_s])
    print(
        f"bench's recorded model batches over raw: multiple choice {b_choice:.2f} s "
        f"({b_choice / choice:.3f}x), generations {b_gen:.2f} s ({b_gen / gen:.3f}x)"
    )


def metric_agrees(agreement: Agreement):
    """Accuracy-type figures equal, or apart only by flips on near ties; the rest
    (exact_match) equal."""

    def same(metric: str, mine, other) -> bool:
        if mine is None or other is None:
            return False
        equal = math.isclose(mine[0], other[0], rel_tol=1e-12) and (
            mine[1] == other[1] or math.isclose(mine[1], other[1], rel_tol=1e-9)
        )
        if equal or metric not in ("acc", "acc_norm"):
            return equal
        flips = [f for f in agreement.flips if f.metric == metric]
        return bool(flips) and all(f.near_tie for f in flips)

    return same


def print_agreement(ours: dict, theirs: dict, agreement: Agreement) -> bool:
    table_ok = print_scores(ours, theirs, metric_agrees(agreement))
    print(
        f"\nlog-likelihoods: largest difference {agreement.max_ll_diff:.2e} over every choice "
        f"(tolerance {LL_TOLERANCE:g}): {'ok' if agreement.lls_within else 'TOO LARGE'}"
    )
    print(f"prompts identical on both sides: {'yes' if agreement.prompts_same else 'NO'}")
    print(f"choice flips (acc or acc_norm differs): {len(agreement.flips)}")
    for flip in agreement.flips[:SHOWN_FLIPS]:
        print(
            f"  doc {flip.doc_id:5d} {flip.metric:8s} gap between its two best choices "
            f"{flip.gap:.2e} (lm_eval) {flip.bench_gap:.2e} (bench)"
            f"{'  near tie' if flip.near_tie else '  NOT A NEAR TIE'}"
        )
    if len(agreement.flips) > SHOWN_FLIPS:
        print(f"  ... and {len(agreement.flips) - SHOWN_FLIPS} more")
    print(f"generations that differ: {len(agreement.gen_diffs)}")
    for doc, text, mine in agreement.gen_diffs[:SHOWN_FLIPS]:
        print(f"  doc {doc:5d} lm_eval {text!r} bench {mine!r}")
    for line in agreement.missing:
        print(f"  missing: {line}")
    ok = (
        table_ok
        and agreement.lls_within
        and agreement.prompts_same
        and all(f.near_tie for f in agreement.flips)
        and not agreement.gen_diffs
        and not agreement.missing
    )
    print(f"scores agree (within the tolerances above): {'yes' if ok else 'NO'}")
    return ok


def print_tokens(raw: RawModel, requests, run: RawTimes, samples: list[dict], pack) -> None:
    choices, _ = requests
    lm, bench = choice_counts(raw.plan_choices(choices), raw.plan_questions(choices), len(choices))
    gen = run.gen_count
    recorded_choice = sum(
        r["prompt_tokens"] + r["completion_tokens"]
        for r in samples
        if r["task"] == pack.choice_task
    )
    recorded_prompts = sum(r["prompt_tokens"] for r in samples if r["task"] == pack.gen_task)
    print("\ntokens through the model (the same tokenization, lm-eval's HF class, on both sides)")
    print(f"{'':44s} {'lm_eval':>12s} {'bench':>12s}")
    lines = [
        ("multiple choice: loglikelihood requests", lm.requests, bench.requests),
        ("  forward rows (identical rows merged)", lm.rows, bench.rows),
        ("  tokens in those rows", lm.tokens, bench.tokens),
        ("  tokens with batch padding", lm.padded, bench.padded),
        ("  positions through the output layer", lm.logit_positions, bench.logit_positions),
        ("generations: prompt tokens", gen.prompt_tokens, gen.prompt_tokens),
        ("  prompt tokens with batch padding", gen.prefill_padded, gen.prefill_padded),
        ("  decode steps x batch rows", gen.decode_tokens, gen.decode_tokens),
        (
            "total tokens with padding",
            lm.padded + gen.prefill_padded + gen.decode_tokens,
            bench.padded + gen.prefill_padded + gen.decode_tokens,
        ),
    ]
    for label, a, b in lines:
        print(f"{label:44s} {a:>12,d} {b:>12,d}")
    print(
        "  counted from lm_eval's logged requests, tokenized as both tokenize them: rows,\n"
        "  batches and padding as lm-eval's HFLM forms them (context + continuation minus its\n"
        "  last token, identical rows once, longest first, output layer at every position)\n"
        "  and as bench/backends/shared_context.py forms them (batch-size questions per\n"
        "  batch, each context once, right-padded; the choices' further tokens on the\n"
        "  contexts' KV cache; output layer only where read; computed here, bench does\n"
        "  not record forwarded tokens). Generations: the raw replay's\n"
        "  batches, which both harnesses form alike (longest prompt first); one token per\n"
        "  row per decode step."
    )
    print(
        f"  check: bench's recorded request tokens, multiple choice {recorded_choice:,d} "
        f"(computed {lm.request_tokens:,d}), generation prompts {recorded_prompts:,d} "
        f"(computed {gen.prompt_tokens:,d})"
    )


def print_raw_check(theirs, requests, run: RawTimes) -> None:
    """The raw replay's answers against lm_eval's: proof it did the same work."""
    choices, gens = requests
    by_doc: dict[int, list[float]] = {}
    for request, ll in zip(choices, run.lls, strict=True):
        by_doc.setdefault(request.doc_id, []).append(ll)
    diff = max(
        (
            abs(a - b)
            for doc, lls in by_doc.items()
            for a, b in zip(lls, theirs.choices[doc].lls, strict=True)
        ),
        default=0.0,
    )
    texts = sum(
        text != theirs.gens[request.doc_id].text
        for request, text in zip(gens, run.texts, strict=True)
    )
    print(
        f"raw replay against lm_eval: largest log-likelihood difference {diff:.2e}, "
        f"generations that differ {texts} of {len(gens)}"
    )
