"""Both offline packs materialize into real Hugging Face folders that answer sensibly."""

import pytest

from bench.models.packs import PACKS, materialize, read_manifest, sha256_file, smoke_answer
from bench.models.weights import weights_hash
from tests.conftest import run_bench

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(PACKS))
def test_pack_materializes_verified(name):
    pack = PACKS[name]
    folder = materialize(name)
    manifest = read_manifest(name)
    assert (folder / "config.json").is_file()
    assert list(folder.glob("*.safetensors"))
    assert manifest["gguf_sha256"] == sha256_file(pack.locate_gguf()) == pack.gguf_sha256
    assert manifest["weights_sha256"] == weights_hash(folder)
    # The smoke prompt is answered again from the saved folder, not read from the manifest.
    assert pack.smoke_expect in smoke_answer(folder, pack).lower()


def test_gemma_tokenizer_adds_bos():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(materialize("gemma-3-270m"))
    assert tokenizer("Paris is").input_ids[0] == tokenizer.bos_token_id == 2


def test_cli_models_path_and_list():
    result = run_bench("models", "path", "smollm2-135m-instruct")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(materialize("smollm2-135m-instruct"))
    listing = run_bench("models", "list")
    assert listing.returncode == 0 and "gemma-3-270m" in listing.stdout

    unknown = run_bench("models", "pull", "gemma-3")
    assert unknown.returncode == 2 and "gemma-3-270m" in unknown.stderr
