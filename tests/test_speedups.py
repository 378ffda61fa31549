"""Speed-ups keep lm-eval's numbers: scoring reads logits of the needed
positions only and must agree with the full forward pass within float tolerance;
detecting hardware must not import torch;
prompt templates compiled once must render what lm-eval renders; the cached index of
lm-eval's built-in tasks must equal lm-eval's own."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from bench.backends import create_backend
from bench.records import RunSettings
from tests.conftest import BASICS_TASKS, REPO


@pytest.fixture(scope="module")
def backend(smollm2_dir):
    return create_backend(
        "hf", smollm2_dir, RunSettings(backend="hf", batch_size=3, model_args={"dtype": "float32"})
    )


def test_scored_positions_agree_with_the_full_logits(backend):
    # Two code paths (a product over fewer rows): equal within float tolerance, not bits.
    torch.manual_seed(0)
    cases = [(3, 18, 14), (3, 40, 1), (1, 25, 24), (2, 9, 8), (8, 30, 29), (5, 12, 11), (1, 5, 4)]
    for rows, width, first in cases:
        inputs = torch.randint(0, 49000, (rows, width)).to(backend.device)
        full = F.log_softmax(backend._model_call(inputs), dim=-1)[:, first:]
        part = F.log_softmax(backend._logits_from(inputs, first), dim=-1)
        assert part.shape == full.shape
        torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-4)


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
        assert logprob == pytest.approx(their_logprob, rel=1e-6, abs=1e-5)
        assert greedy == their_greedy
    assert ours[3][0] == ours[4][0]


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
