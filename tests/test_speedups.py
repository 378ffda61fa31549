"""Speed-ups keep lm-eval's numbers: scoring reads logits of the needed
positions only and must give the very bits of the full forward pass; the lean import of
transformers must leave its flags as they were; detecting hardware must not import torch;
prompt templates compiled once must render what lm-eval renders; the cached index of
lm-eval's built-in tasks must equal lm-eval's own."""

import subprocess
import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from transformers import LogitsProcessor, LogitsProcessorList

from bench.backends import create_backend
from bench.backends.base import GenerationSpec
from bench.backends.hf import MIN_OUTPUT_ROWS, kept_from
from bench.backends.side_by_side import Occupancy
from bench.backends.sliced_products import SlicedProduct
from bench.records import RunSettings
from tests.conftest import BASICS_TASKS, REPO


@pytest.fixture(scope="module")
def backend(smollm2_dir):
    import transformers.utils

    from bench.backends import LEAN_SKIPS

    def flags() -> list:
        return [getattr(transformers.utils, n) for n in LEAN_SKIPS] + [torch.compiler.disable]

    before = flags()
    lm = create_backend(
        "hf", smollm2_dir, RunSettings(backend="hf", batch_size=3, model_args={"dtype": "float32"})
    )
    assert flags() == before  # restored once the model is loaded
    return lm


def test_scored_positions_are_bitwise_those_of_the_full_logits(backend):
    torch.manual_seed(0)
    cases = [(3, 18, 14), (3, 40, 1), (1, 25, 24), (2, 9, 8), (8, 30, 29), (5, 12, 11), (1, 5, 4)]
    for rows, width, needed in cases:
        first = kept_from(needed, rows, width)
        assert first <= needed and (rows * (width - first) >= MIN_OUTPUT_ROWS or first == 0)
        inputs = torch.randint(0, 49000, (rows, width)).to(backend.device)
        full = F.log_softmax(backend._model_call(inputs), dim=-1)[:, first:]
        part = F.log_softmax(backend._logits_from(inputs, first), dim=-1)
        assert part.shape == full.shape
        assert torch.equal(part, full)


def test_score_pairs_equals_lm_evals_own_loglikelihood(backend):
    # Contexts and continuations of several lengths, more pairs than one batch, one
    # duplicated row: bench's loop against HFLM's _loglikelihood_tokens on the same model.
    texts = [
        ("Question: What is 2 + 2?\nAnswer:", " 4"),
        ("Question: What is 2 + 2?\nAnswer:", " four"),
        ("Question: What is 2 + 2?\nAnswer:", " twenty-two, I think"),
        ("The capital of France is", " Paris"),
        ("The capital of France is", " Paris"),
        ("A long context that goes on and on about nothing in particular, then asks:", " why?"),
        ("x", " y z"),
    ]
    pairs = [backend.encode_request(c, t) for c, t in texts]
    ours = backend.score_pairs(pairs, "loglikelihood")
    from lm_eval.models.huggingface import HFLM

    theirs = HFLM._loglikelihood_tokens(
        backend, [((c, t), ctx, cont) for (c, t), (ctx, cont) in zip(texts, pairs, strict=True)]
    )
    for (logprob, greedy, _), (their_logprob, their_greedy) in zip(ours, theirs, strict=True):
        assert logprob == pytest.approx(their_logprob, abs=1e-6)
        assert greedy == their_greedy
    assert ours[3][0] == ours[4][0]


def test_batches_side_by_side_give_the_same_bits(backend, monkeypatch):
    # Eight batches of three rows: one after another on the backend's threads, then two
    # at a time on worker threads of one torch thread each; every answer bit for bit.
    words = "the cat sat on a mat while two dogs ran far away from home".split()
    texts = [(f"{i}: " + " ".join(words[: 3 + i % 7]), " " + words[-1 - i % 5]) for i in range(24)]
    pairs = [backend.encode_request(c, t) for c, t in texts]
    assert len(backend._plan(pairs, 0)) == 8

    monkeypatch.setattr(type(backend), "_side_by_side", lambda self, plan: 1)
    alone = backend.score_pairs(pairs, "loglikelihood")
    ran_on: set[str] = set()
    score_batch = type(backend)._score_batch

    def recording(self, batch):
        ran_on.add(threading.current_thread().name)
        return score_batch(self, batch)

    monkeypatch.setattr(type(backend), "_score_batch", recording)
    monkeypatch.setattr(type(backend), "_side_by_side", lambda self, plan: 2)
    torch.set_num_threads(2)  # a count the workers' 1 could overwrite
    together = backend.score_pairs(pairs, "loglikelihood")
    assert len(ran_on) == 2 and all(name.startswith("bench-batch") for name in ran_on)
    assert [(lp, g) for lp, g, _ in together] == [(lp, g) for lp, g, _ in alone]
    assert torch.get_num_threads() == 2  # the workers' 1 thread stayed theirs


class StepScores(LogitsProcessor):
    """Records every generation step's scores, keyed by the tokens so far, and where."""

    def __init__(self):
        self.scores: dict[tuple, torch.Tensor] = {}
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, input_ids, scores):
        with self._lock:
            self.scores[(input_ids.shape, tuple(input_ids.flatten().tolist()))] = scores.clone()
            self.threads.add(threading.current_thread().name)
        return scores


def test_generation_side_by_side_gives_the_same_bits(backend, monkeypatch):
    # Two batches of eight three-shot prompts (basics_arith's shape): one after another on
    # two torch threads (lm-eval's count here) with plain products; then side by side on
    # one thread each; then one after another on one thread (a busy machine: threads.py);
    # both with the output layer's products in slices (sliced_products.py). Decode steps'
    # attention keeps two threads, so every step's scores, prefill and decode, come out
    # bit for bit (on one thread, that attention alone gives other bits for these).
    shots = "".join(f"Question: What is {a} * 3?\nAnswer: {a * 3}\n\n" for a in (2, 5, 7))
    prompts = [f"{shots}Question: What is {a} + {a * 3 % 7}?\nAnswer:" for a in range(16)]
    monkeypatch.setattr(backend, "batch_size_per_gpu", 8)
    monkeypatch.setattr(backend, "_plain_threads", 2)
    output_layer = backend.model.get_output_embeddings()
    runs = []
    for workers, threads, sliced in ((1, 2, False), (2, 2, True), (1, 1, True)):
        side_by_side = lambda self, plan, n=workers: n  # noqa: E731
        monkeypatch.setattr(type(backend), "_side_by_side_generation", side_by_side)
        monkeypatch.setattr(backend, "_products_sliced", not sliced)
        output_layer.__dict__.pop("forward", None)  # plain, or sliced afresh by generate
        torch.set_num_threads(threads)
        steps = StepScores()
        spec = GenerationSpec(
            until=["\n"],
            max_gen_toks=5,
            kwargs={"do_sample": False, "logits_processor": LogitsProcessorList([steps])},
        )
        texts = [text for text, _ in backend.generate(prompts, spec)]
        runs.append((texts, steps))
        if sliced:  # the slices were used: their first product matched the plain one
            checked = output_layer.forward.same_bits
            assert (8, threads // workers) in checked and all(checked.values())
    (texts, alone), (_, together), _ = runs
    assert len(together.threads) == 2 and all(t.startswith("bench-batch") for t in together.threads)
    assert len(alone.scores) > 2 * 2  # decode steps after each batch's prefill
    for other_texts, other in runs[1:]:
        assert other.scores.keys() == alone.scores.keys()
        assert all(torch.equal(other.scores[k], alone.scores[k]) for k in alone.scores)
        assert other_texts == texts
    torch.set_num_threads(2)


def test_sliced_product_keeps_the_bits_and_checks_each_shape_once():
    torch.manual_seed(0)
    layer = torch.nn.Linear(576, 32768)  # 75 MB of weights
    sliced = SlicedProduct(layer)
    assert len(sliced.parts) > 1  # it does slice
    rows = torch.randn(3, 1, 576)  # a decode step of three rows
    with torch.no_grad():
        first, again = sliced(rows), sliced(rows)  # checked, then sliced
        assert sliced.same_bits == {(3, torch.get_num_threads()): True}
        assert torch.equal(first, F.linear(rows, layer.weight, layer.bias))
        assert torch.equal(again, first)
        prompt = torch.randn(3, 7, 576)  # more than one position per row: the plain product
        assert torch.equal(sliced(prompt), F.linear(prompt, layer.weight, layer.bias))
    assert len(sliced.same_bits) == 1


def test_time_of_batches_side_by_side_is_shared_out():
    # Spans 0-2, 1-3 and 3-4: from 1 to 2 two batches ran, so each gets half of that
    # second; the shares add up to the 4 s the three took.
    clock = Occupancy()
    spans = [[0.0, 2.0], [1.0, 3.0], [3.0, 4.0]]
    clock._spans = [list(s) for s in spans]
    shares = [clock.share(s) for s in spans]
    assert shares == [1.5, 1.5, 1.0]
    assert sum(shares) == 4.0


def test_batch_clock_waits_for_the_gpu(monkeypatch):
    """CUDA queues kernels and returns: a batch's time is read once they have run. No GPU
    here, so torch.cuda.synchronize is replaced; on a CPU nothing is waited for (the hf runs
    in these tests take that path for real; README "Performance" has a run on an H200)."""
    from types import SimpleNamespace

    from bench.backends.hf import HFBackend

    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    HFBackend._wait_for_device(SimpleNamespace(device=torch.device("cpu")))
    assert waited == []
    gpu = torch.device("cuda", 0)
    HFBackend._wait_for_device(SimpleNamespace(device=gpu))
    assert waited == [gpu]


def test_lean_import_skips_sklearn_scipy_dynamo_and_dtensor(smollm2_dir):
    # Loading the model and generating with it need none of these.
    skipped = ("sklearn", "scipy", "torch._dynamo", "torch.distributed.tensor")
    code = (
        "import sys; from pathlib import Path; from bench.backends import create_backend;"
        "from bench.records import RunSettings;"
        f"lm = create_backend('hf', Path({str(smollm2_dir)!r}), RunSettings(backend='hf'));"
        "ids = lm.tokenizer(['The capital of France is'], return_tensors='pt');"
        "lm.model.generate(**ids, max_new_tokens=3, do_sample=False);"
        f"print(sorted(m for m in {skipped!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


DEFERRED_DYNAMO = """
import sys, torch
from bench.backends.deferred_dynamo import deferred_dynamo

real_disable = torch.compiler.disable
with deferred_dynamo():
    @torch.compiler.disable
    def eager(x):
        return x + 1

    @torch.compiler.allow_in_graph
    def in_graph(x):
        return x * 2

    @torch._dynamo.assume_constant_result
    def constant():
        return 3

    assert eager(torch.ones(1)).item() == 2  # runs as it is: no real torch._dynamo yet
    print("deferred", type(sys.modules["torch._dynamo"]).__name__)
assert "torch._dynamo" not in sys.modules and torch.compiler.disable is real_disable
with deferred_dynamo():  # anything else imports the real module at once
    if sys.argv[1] == "attribute":
        torch._dynamo.config
    else:
        import torch._dynamo.utils  # the real package's import makes it: only once
print("other use", type(sys.modules["torch._dynamo"]).__name__)
# One copy of each module: the object the package's own modules use is the one imported.
assert sys.modules["torch._dynamo.utils"].counters is sys.modules["torch._dynamo.exc"].counters

import torch._dynamo
from torch._dynamo import trace_rules
print("marks", trace_rules.is_callable_allowed(in_graph), constant._dynamo_marked_constant)
explained = torch._dynamo.explain(lambda x: eager(in_graph(x)) * 3)(torch.ones(1))
print("graph breaks", explained.graph_break_count)
"""


@pytest.mark.parametrize("other_use", ["attribute", "submodule"])
def test_deferred_dynamo_keeps_what_the_marks_mean(other_use):
    # A fresh process, where torch._dynamo has not been imported yet.
    out = subprocess.run(
        [sys.executable, "-c", DEFERRED_DYNAMO, other_use],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "deferred _StandIn",
        "other use module",
        "marks True True",
        "graph breaks 1",  # the disabled function still breaks the graph once compiled
    ]


def test_hardware_detection_does_not_import_torch():
    code = (
        "import sys; from bench.engine.environment import hardware; info = hardware();"
        "print('torch' in sys.modules, info['cpu_count'] > 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]


def test_cached_templates_render_what_lm_eval_renders():
    from lm_eval import utils

    from bench.engine import templates

    docs = [
        {"question": "What is 2 * 4?", "choices": ["8", "6"], "answer": 0},
        {"question": "Wer schrieb 'Faust'?", "choices": ["Goethe", "Schiller"], "answer": 0},
    ]
    sources = [
        "Question: {{question}}\nAnswer:",
        "{{choices}}",
        "{{ question | regex_replace('[0-9]', '#') }}\n",
        "{% for c in choices %}{{ loop.index }}. {{ c }}\n{% endfor %}",
    ]
    for source in sources:
        for doc in docs:
            assert templates.render(source, doc) == utils.env.from_string(source).render(**doc)
    before = templates._compiled.cache_info().hits
    templates.render(sources[0], docs[0])
    assert templates._compiled.cache_info().hits == before + 1
    with pytest.raises(Exception, match="undefined"):  # lm-eval's StrictUndefined is kept
        templates.render("{{missing}}", docs[0])


def test_builtin_task_index_is_cached_and_equal_to_lm_evals(tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import TaskIndex

    from bench.catalog import builtin_index

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    walk = TaskIndex.build
    fresh = TaskManager()  # lm-eval's own walk over its ~14,700 files
    with builtin_index.cached_builtin_index():
        first = TaskManager()  # walks once more and writes the cache
    assert len(list((tmp_path / "lm-eval-index").glob("*.pickle"))) == 1
    with builtin_index.cached_builtin_index():
        second = TaskManager(include_path=str(REPO / "tasks" / "basics"))  # from the cache
    assert TaskIndex.build is walk  # restored
    for manager in (first, second):
        assert set(fresh.all_tasks) <= set(manager.all_tasks)
        assert manager.all_groups == fresh.all_groups and manager.all_tags == fresh.all_tags
        for name in ("arc_easy", "hellaswag", "mmlu"):
            ours, theirs = manager.task_index[name], fresh.task_index[name]
            assert (ours.kind, ours.yaml_path) == (theirs.kind, theirs.yaml_path)
            assert ours.cfg == theirs.cfg
    assert first.all_tasks == fresh.all_tasks
    assert set(second.all_tasks) - set(fresh.all_tasks) == set(BASICS_TASKS)
