"""Other libraries' progress bars, advice and warnings off unless asked for (--verbose).

bench shows its own progress; datasets, transformers, huggingface_hub, lm-eval and vLLM
each print theirs otherwise, some in the model's process. Code of ours that calls a
library with a progress-bar switch of its own turns it off there too (vLLM's use_tqdm:
with tqdm disabled its bar's elapsed time is 0, which vLLM divides by). Each library reads these
documented environment variables when it starts, so they are set before anything imports
them, and a model process started later inherits them. A variable the user set wins.
"""

from __future__ import annotations

import os

QUIET_ENV = {
    "TQDM_DISABLE": "1",  # tqdm's own override of its `disable` argument (tqdm >= 4.66)
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "VLLM_LOGGING_LEVEL": "ERROR",
    "PYTHONWARNINGS": "ignore",
}


def verbose_requested(argv: list[str]) -> bool:
    """--verbose anywhere before a lone `--`, or BENCH_VERBOSE=1."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    return "--verbose" in args or os.environ.get("BENCH_VERBOSE") == "1"


def quiet_libraries() -> None:
    """Set the quiet defaults in this process's environment (and so its children's)."""
    import warnings

    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if os.environ["PYTHONWARNINGS"] == "ignore":
        warnings.simplefilter("ignore")
