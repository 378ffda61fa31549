"""Speed-ups keep lm-eval's numbers: scoring reads logits of the needed positions only,
and the choices of a question share their context's KV cache; both must agree with
lm-eval's own forward passes within float tolerance. Detecting hardware must not import
torch."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from bench.backends import create_backend
from bench.records import RunSettings
from tests.conftest import REPO


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


def test_questions_batched_on_their_shared_caches_equal_lm_evals_rows(backend):
    # Seven questions of different context lengths (so batches pad in the middle of the
    # cache), one- and multi-token choices, three questions per batch: every choice's
    # loglikelihood and greedy flag equal those of lm-eval's own row per choice.
    from lm_eval.models.huggingface import HFLM

    stems = [
        "Q: Which is a fruit?\nA:",
        "Question: Which of these animals can fly, if any, on a calm day?\nAnswer:",
        "Pick one:",
        "The following is a question about tools.\n\nQuestion: Which cuts wood?\nAnswer:",
        "Colour of the sky at noon:",
        "Name a vehicle with two wheels, no engine, and pedals. Answer:",
        "1 + 1 =",
    ]
    choices = [" a ripe yellow banana", " a hammer", " 2", " the old wooden bicycle", " blue"]
    texts = [(stem, choice) for stem in stems for choice in choices]
    pairs = [backend.encode_request(c, t) for c, t in texts]
    ours = backend.score_pairs(pairs, "loglikelihood")
    theirs = HFLM._loglikelihood_tokens(
        backend, [((c, t), ctx, cont) for (c, t), (ctx, cont) in zip(texts, pairs, strict=True)]
    )
    assert max(len(cont) for _, cont in pairs) > 3
    for (logprob, greedy, timing), (their_logprob, their_greedy) in zip(ours, theirs, strict=True):
        assert logprob == pytest.approx(their_logprob, rel=1e-6, abs=1e-4)
        assert greedy == their_greedy
        assert timing.batch_size == 3 * len(choices) or timing.batch_size == len(choices)


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
