"""transformers' import with two of its steps remembered (bench/backends/import_cache.py):
the same answers as computing them, read back without computing, and recomputed once
what they depend on changes."""

import json
import os
import subprocess
import sys

from bench.backends import import_cache

# Imports transformers inside remembered_transformers_imports and prints what the two
# steps answered, in a canonical form (sets sorted), and how often they were computed.
PROBE = """
import builtins, importlib.metadata, json, os, sys
computed = {"distributions": 0, "files_read": 0}
original = importlib.metadata.packages_distributions
def counting():
    computed["distributions"] += 1
    return original()
importlib.metadata.packages_distributions = counting
opened = builtins.open
def counting_open(file, *args, **kwargs):  # how the structure step reads
    if str(file).endswith(".py") and f"transformers{os.sep}models" in str(file):
        computed["files_read"] += 1
    return opened(file, *args, **kwargs)
builtins.open = counting_open
from bench.backends.import_cache import remembered_transformers_imports
with remembered_transformers_imports():
    import transformers.models.auto
from transformers.utils import import_utils
def canon(x):
    if isinstance(x, dict):
        return sorted([canon(k), canon(v)] for k, v in x.items())
    if isinstance(x, (set, frozenset, list, tuple)):
        return sorted(canon(v) for v in x)
    return str(x)
models = import_utils.define_import_structure(transformers.models.__file__)
print(json.dumps({
    "distributions": canon(import_utils.PACKAGE_DISTRIBUTION_MAPPING),
    "structure": canon(models),
    "computed": computed["distributions"],
    "files_read": computed["files_read"],
    "patched_back": importlib.metadata.packages_distributions is counting,
}))
"""


def probe(cache) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_CACHE": str(cache)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_remembered_answers_equal_computed_ones(tmp_path):
    first = probe(tmp_path)  # computes, and writes the cache
    assert first["computed"] == 1 and first["files_read"] > 1000
    assert list((tmp_path / "import-cache").glob("*.pickle"))
    second = probe(tmp_path)  # reads it
    assert second["computed"] == 0 and second["files_read"] == 0
    assert second["distributions"] == first["distributions"]
    assert second["structure"] == first["structure"] and len(first["structure"]) > 0
    assert first["patched_back"] and second["patched_back"]


def test_an_install_changes_the_distributions_key(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    before = import_cache._installed()
    (tmp_path / "newpkg-1.0.dist-info").mkdir()
    assert import_cache._installed() != before
