"""The sample explorer: every sample of each leaderboard task, each model's answer beside
the others, from the same runs the leaderboard cells show.

Files, under site/samples/ (read from file:// as <script src> shards, never fetched):

- `<slug>.html`: the task's page: filters, text search, a pager of PAGE samples.
- `<slug>/index.js`: one short row per sample, what the filters need: its doc_id, its
  shard, and per model the class of its answer (equal answers share a class) and
  whether it was wrong. About 12 + 2 x models bytes a sample: 0.6 MB for 10,000 x 20.
- `<slug>/<n>.js`: the samples themselves (prompt, target, each model's answer, score
  and per-choice loglikelihoods), cut into shards of at most SHARD_BYTES of JSON; a text
  longer than MAX_TEXT (an answer, MAX_ANSWER) is cut with a note, so no file passes
  ~2 MB however large the task. A page loads only the shards its samples lie in; a text
  search loads every shard of the task.

Addresses, after `#` as in a query string: `doc-<doc_id>` (a sample's permalink),
`filter=disagree|allwrong|only:<model index>`, `m=<model label>` (repeatable: compare and
show only these models), `q=<text>`. E.g. `samples/basics_facts.html#filter=disagree&m=A&m=B`.

An answer is the chosen option for multiple choice (the choice with the highest
loglikelihood, lm-eval's `acc`; the store keeps no choice texts, so options show by
index) and the generated text after the task's filters for generation. A model is wrong
on a sample where its per-sample primary metric is a bounded higher-is-better score of 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.report.leaderboard import Board, TaskColumn, row_label
from bench.report.slugs import slug
from bench.store.schema import Metric, RunTask, Sample

PAGE = 50  # samples a page shows (samples.js reads it from the page)
SHARD_BYTES = 1_000_000
MAX_TEXT = 200_000  # prompt, target
MAX_ANSWER = 20_000  # each model's answer (x models per sample)
# One character per model in an index row: its answer's class; "-" no sample, "?" no
# answer to compare (a perplexity task). Beyond 62 distinct answers, a list of ints.
CLASSES = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ModelColumn:
    """One leaderboard row's run of a task: what its samples are read from."""

    label: str
    run_id: str
    metric: str  # the primary metric, per sample in Sample.scores
    filter: str  # the lm-eval filter the primary metric was computed after
    output_type: str


@dataclass(frozen=True)
class Answer:
    text: str | None  # chosen option or generated text; None: nothing to compare
    key: str | None  # what equal answers share
    score: str  # the per-sample primary metric, as text
    wrong: bool | None  # None: partial credit, or not a bounded score
    loglikelihoods: list[float] | None  # multiple choice: one per choice
    raw: str | None  # the response before filters, where it differs


def js_json(value) -> str:
    """JSON that is also safe inside HTML and JS: no `</script>` or `<!--` survives."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return (
        text[:limit] + f"\n… [{len(text) - limit} more characters not shown; "
        "`bench results export --what samples` has them all]"
    )


def address(
    task: str, filter: str = "", models: tuple[str, ...] = (), doc: int | None = None
) -> str:
    """A link into the explorer, relative to the site folder: a sample's permalink, or the
    task's samples under a filter ("disagree", "allwrong", "only:<i>") among `models`
    (labels as `labels()` gives them)."""
    page = f"samples/{slug(task)}.html"
    if doc is not None:
        return f"{page}#doc-{doc}"
    query = urlencode([("filter", filter)] * bool(filter) + [("m", m) for m in models])
    return f"{page}#{query}" if query else page


def labels(result: Board) -> list[str]:
    """What the explorer calls each leaderboard row: as `bench compare` names it (its
    model, or model@backend where the model has several rows)."""
    return [row_label(r, result.rows) for r in result.rows]


def _score_text(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return json.dumps(value)


def _wrong(value, higher_is_better: bool | None) -> bool | None:
    if not higher_is_better or not isinstance(value, int | float):
        return None
    value = float(value)
    return True if value == 0 else False if value == 1 else None


def answer(
    stored: str, stored_raw: str, scores: dict, column: ModelColumn, higher_is_better: bool | None
) -> Answer:
    """A stored sample (its Sample.response, raw_response and scores) as the explorer
    shows it."""
    value = scores.get(column.metric)
    try:
        response = json.loads(stored)
    except json.JSONDecodeError:
        response = stored
    text = key = lls = raw = None
    exact = _loglikelihoods(response) if column.output_type == "multiple_choice" else None
    if exact:
        chosen = max(range(len(exact)), key=exact.__getitem__)
        lls = [round(x, 4) for x in exact]
        text, key = f"choice {chosen}", str(chosen)
    elif column.output_type in ("generate_until", "multiple_choice"):
        # Generation; or a response in no layout lm-eval writes, shown as it is.
        if isinstance(response, list) and all(isinstance(r, str) for r in response):
            text = "\n".join(response)
        else:
            text = response if isinstance(response, str) else json.dumps(response)
        key = text
        try:
            before = json.loads(stored_raw)
            flat = before[0] if isinstance(before, list) and len(before) == 1 else before
            flat = flat[0] if isinstance(flat, list) and len(flat) == 1 else flat
            raw = flat if isinstance(flat, str) else json.dumps(flat)
        except (json.JSONDecodeError, TypeError, IndexError):
            raw = stored_raw
        raw = None if raw == text else _cap(raw, MAX_ANSWER)
        text = _cap(text, MAX_ANSWER)
    return Answer(text, key, _score_text(value), _wrong(value, higher_is_better), lls, raw)


def _loglikelihoods(response) -> list[float] | None:
    """lm-eval's filtered_resps of a multiple-choice sample: one (loglikelihood,
    is_greedy) per choice; None for anything else."""
    if not isinstance(response, list) or not response:
        return None
    try:
        return [float(r[0] if isinstance(r, list) else r) for r in response]
    except (TypeError, ValueError, IndexError):
        return None


def _gold(target: str, n_choices: int) -> int | None:
    try:
        gold = int(target)
    except ValueError:
        return None
    return gold if 0 <= gold < n_choices else None


def _columns(engine: Engine, result: Board, task: str) -> list[tuple[int, ModelColumn]]:
    """(leaderboard row index, its run of `task`) for each row that has the task."""
    names = labels(result)
    cells = {i: row.cells[task].run_id for i, row in enumerate(result.rows) if task in row.cells}
    runs = set(cells.values())
    with engine.connect() as connection:
        primary = {
            run: (metric, filt)
            for run, metric, filt in connection.execute(
                select(Metric.run_id, Metric.metric, Metric.filter).where(
                    Metric.run_id.in_(runs), Metric.task == task, Metric.is_primary
                )
            )
        }
        kinds = dict(
            connection.execute(
                select(RunTask.run_id, RunTask.output_type).where(
                    RunTask.run_id.in_(runs), RunTask.task == task
                )
            ).all()
        )
    return [
        (i, ModelColumn(names[i], run, *primary[run], kinds.get(run, "")))
        for i, run in cells.items()
        if run in primary
    ]


def _classes(answers: list[Answer | None]) -> str | list[int]:
    keys: dict[str, int] = {}
    codes = [
        -1 if a is None else -2 if a.key is None else keys.setdefault(a.key, len(keys))
        for a in answers
    ]
    if len(keys) > len(CLASSES):
        return codes
    return "".join("-" if c == -1 else "?" if c == -2 else CLASSES[c] for c in codes)


def _wrong_codes(answers: list[Answer | None]) -> str:
    return "".join(
        "-" if a is None else "." if a.wrong is None else "1" if a.wrong else "0" for a in answers
    )


def _record(doc_id: int, prompt: str, target: str, answers: list[Answer | None]) -> dict:
    n_choices = max((len(a.loglikelihoods) for a in answers if a and a.loglikelihoods), default=0)
    return {
        "d": doc_id,
        "p": _cap(prompt, MAX_TEXT),
        "t": _cap(target, MAX_TEXT),
        "g": _gold(target, n_choices) if n_choices else None,
        "a": [
            None
            if a is None
            else {
                "x": a.text,
                "s": a.score,
                "w": a.wrong,
                "l": a.loglikelihoods,
                "c": int(a.key) if a.loglikelihoods else None,  # the chosen choice
                "r": a.raw,
            }
            for a in answers
        ],
    }


def write_task(
    engine: Engine, folder: Path, result: Board, column: TaskColumn
) -> tuple[list[str], int]:
    """The data files of one task under `folder`; returns the models' labels and the
    number of samples."""
    models = _columns(engine, result, column.task)
    by_run = {m.run_id: k for k, (_, m) in enumerate(models)}
    docs: dict[int, list] = {}
    query = select(
        Sample.run_id,
        Sample.doc_id,
        Sample.filter,
        Sample.response,
        Sample.raw_response,
        Sample.scores,
    ).where(Sample.run_id.in_(by_run), Sample.task == column.task)
    with engine.connect() as connection:
        for run_id, doc_id, filt, response, raw, scores in connection.execute(query):
            k = by_run[run_id]
            model = models[k][1]
            if filt != model.filter:
                continue
            slots = docs.setdefault(doc_id, [None] * len(models))
            slots[k] = answer(response, raw, scores, model, column.higher_is_better)
        texts = _texts(connection, list(by_run), column.task, set(docs))
    folder.mkdir(parents=True, exist_ok=True)
    rows, shard, size, n = [], [], 0, 0
    for doc_id in sorted(docs):
        text = js_json(_record(doc_id, *texts[doc_id], docs[doc_id]))
        if shard and size + len(text.encode()) > SHARD_BYTES:
            _write_shard(folder, n, shard)
            shard, size, n = [], 0, n + 1
        shard.append(text)
        size += len(text.encode()) + 1
        rows.append([doc_id, n, _classes(docs[doc_id]), _wrong_codes(docs[doc_id])])
    if shard:
        _write_shard(folder, n, shard)
    labels = [m.label for _, m in models]
    index = {"models": labels, "shards": n + 1 if shard else 0, "rows": rows}
    (folder / "index.js").write_text(f"benchSamples.index({js_json(index)});\n", encoding="utf-8")
    return labels, len(rows)


def _texts(connection, runs: list[str], task: str, wanted: set[int]) -> dict:
    """doc_id -> (prompt, target), read once per document rather than once per model:
    from the first run that has it (runs of one task version share them)."""
    texts: dict[int, tuple[str, str]] = {}
    for run in runs:
        if len(texts) == len(wanted):
            break
        query = select(Sample.doc_id, Sample.prompt, Sample.target).where(
            Sample.run_id == run, Sample.task == task
        )
        for doc_id, prompt, target in connection.execute(query):
            if doc_id in wanted:
                texts.setdefault(doc_id, (prompt, target))
    return texts


def _write_shard(folder: Path, n: int, records: list[str]) -> None:
    body = f"benchSamples.shard({n},[{','.join(records)}]);\n"
    (folder / f"{n}.js").write_text(body, encoding="utf-8")


def write_samples(
    engine: Engine, site: Path, result: Board, env: Environment, nav: list[dict]
) -> dict[str, str]:
    """The explorer of every task on the board; returns task -> its first page, relative
    to the site folder."""
    out = site / "samples"
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.js").write_text(
        (Path(__file__).parent / "templates" / "samples.js").read_text()
    )
    template = env.get_template("samples.html.j2")
    pages = {}
    for column in result.columns:
        name = slug(column.task)
        models, count = write_task(engine, out / name, result, column)
        page = template.render(
            title=f"{column.task} samples",
            root="../",
            tasks_nav=nav,
            column=column,
            data=name,
            models=models,
            count=count,
            page_size=PAGE,
        )
        (out / f"{name}.html").write_text(page, encoding="utf-8")
        pages[column.task] = f"samples/{name}.html"
    return pages
