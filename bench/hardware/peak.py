"""What this machine can attain, measured as a run ends: the MFU and MBU denominators
where the run's hardware profile declares none (docs/metrics.md).

- FLOP/s: square matrix products (2 n^3 FLOPs each) in the run's dtype on the run's
  device, n grown until one product takes MIN_PRODUCT_S, then the best of REPEATS. On
  a CPU, one core's rate in that thread's CPU time, times the cores (_cpu_peaks).
- bytes/s: the best of copying an array far larger than the caches (read + write
  counted) and summing it (read), best of REPEATS each.

About a second on a small CPU. Measured after the evaluation, not as the run starts:
there the model may still be loading in its own process. The run's model process is
idle meanwhile.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

MIN_PRODUCT_S = 0.02
REPEATS = 3
SIZES = (256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384)
MAX_SIZE = {"cpu": 4096, "cuda": 16384}
ARRAY_BYTES = {"cpu": 128 * 2**20, "cuda": 2**30}  # beyond the caches: 4x a 32 MiB L3
DTYPE_ALIASES = {"float": "float32", "half": "float16", "double": "float64"}


@dataclass(frozen=True)
class Peak:
    """A denominator of MFU (FLOP/s) or MBU (bytes/s), and where it comes from."""

    value: float
    source: str  # "measured: ..." or "declared by profile NAME: ..."


def flops_text(value: float) -> str:
    for unit, scale in (("TFLOP/s", 1e12), ("GFLOP/s", 1e9)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e6:.4g} MFLOP/s"


def bytes_text(value: float) -> str:
    for unit, scale in (("TB/s", 1e12), ("GB/s", 1e9)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e6:.4g} MB/s"


@dataclass(frozen=True)
class Target:
    """Where and in what the run's model computed: what the peak is measured on."""

    device: str  # cpu | cuda
    dtype: str  # a torch dtype name


def run_target(backend: str, model_args: dict, model_path: Path | None, gpu: bool) -> Target | None:
    """The device and dtype the run's model computed in; None where it ran elsewhere (a
    server: its peak is its profile's to declare)."""
    if backend == "openai":
        return None
    if backend == "llamacpp":
        # ggml computes on the CPU unless layers are offloaded; a float32 product is the
        # CPU's reference rate (its quantized kernels have none torch can run).
        offloaded = str(model_args.get("n_gpu_layers", "0")) not in ("0", "")
        return Target("cuda", "float16") if gpu and offloaded else Target("cpu", "float32")
    device = str(model_args.get("device") or ("cuda" if gpu else "cpu"))
    device = "cuda" if device.startswith("cuda") else "cpu"
    named = next(
        (
            str(model_args[k]).removeprefix("torch.")
            for k in ("mixed_precision_dtype", "dtype", "torch_dtype")
            if model_args.get(k) not in (None, "", "auto")
        ),
        None,
    )
    dtype = named or _checkpoint_dtype(model_path) or "float32"
    if backend == "vllm" and named is None and dtype == "float32" and device == "cuda":
        dtype = "float16"  # vLLM's "auto" runs a float32 checkpoint in float16 on a GPU
    return Target(device, DTYPE_ALIASES.get(dtype, dtype))


def _checkpoint_dtype(model_path: Path | None) -> str | None:
    """The dtype a Hugging Face folder's config.json names ("auto" loads it in that)."""
    if model_path is None or not (Path(model_path) / "config.json").is_file():
        return None
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    for section in (config, config.get("text_config") or {}):
        for key in ("dtype", "torch_dtype"):
            if isinstance(section.get(key), str):
                return section[key]
    return None


def measure(target: Target) -> dict:
    """The peaks on `target`, as recorded in the run's hardware info (hardware["peak"])."""
    import torch

    begin = time.perf_counter()
    device = torch.device(target.device)
    dtype = getattr(torch, target.dtype)
    with torch.no_grad():
        if device.type == "cpu":
            found = _cpu_peaks(torch, dtype)
        else:
            flop_s, size = _matmul_peak(torch, device, dtype, _wall(torch, device))
            found = {
                "flop_s": flop_s,
                "matmul_size": size,
                "memory_bandwidth_bytes_s": _bandwidth(
                    *_arrays(torch, device), _wall(torch, device)
                ),
            }
    return {
        **found,
        "device": target.device,
        "dtype": target.dtype,
        "array_bytes": ARRAY_BYTES[target.device],
        "seconds": round(time.perf_counter() - begin, 3),
    }


def _cpu_peaks(torch, dtype) -> dict:
    """On a CPU, one core's rate timed by that thread's CPU time, so that other processes
    on a shared machine do not make it look slow (a run can only lose to them), times
    the cores torch computes on by default (one per physical core, or OMP_NUM_THREADS).
    All cores busy run at lower clocks than one, so the product errs high: MFU low.
    Memory bandwidth does not scale with cores: the best of one thread in CPU time and
    all of them by the wall clock."""
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_core, size = _matmul_peak(torch, torch.device("cpu"), dtype, time.thread_time)
        arrays = _arrays(torch, torch.device("cpu"))
        one = _bandwidth(*arrays, time.thread_time)
    finally:
        torch.set_num_threads(cores)
    every = _bandwidth(*arrays, time.perf_counter)
    return {
        "flop_s": per_core * cores,
        "flop_s_per_core": per_core,
        "cores": cores,
        "matmul_size": size,
        "memory_bandwidth_bytes_s": max(one, every),
    }


def _wall(torch, device):
    """A clock that waits for the GPU's queued work first."""

    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return clock


def _timed(work, clock, repeats: int) -> float:
    """Fastest of `repeats` runs of `work` by `clock`."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        work()
        best = min(best, clock() - start)
    return best


def _matmul_peak(torch, device, dtype, clock) -> tuple[float, int]:
    for n in SIZES:
        a = torch.full((n, n), 1.0, dtype=dtype, device=device)
        b = torch.full((n, n), 1.0, dtype=dtype, device=device)
        _timed(lambda a=a, b=b: torch.mm(a, b), clock, 1)  # warm-up at this size
        seconds = _timed(lambda a=a, b=b: torch.mm(a, b), clock, 1)
        if seconds >= MIN_PRODUCT_S or n >= MAX_SIZE[device.type]:
            seconds = min(seconds, _timed(lambda a=a, b=b: torch.mm(a, b), clock, REPEATS))
            return 2 * n**3 / seconds, n
    raise AssertionError("unreachable: the last size always returns")


def _arrays(torch, device):
    """A source array far larger than the caches, and a target its size, both touched."""
    source = torch.full((ARRAY_BYTES[device.type] // 4,), 1.0, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    return source, target


def _bandwidth(source, target, clock) -> float:
    """Bytes/s of copying an array (read + write) or summing it (read), the better."""
    size = source.numel() * source.element_size()
    copy = _timed(lambda: target.copy_(source), clock, REPEATS)
    read = _timed(lambda: source.sum(), clock, REPEATS)
    return max(2 * size / copy, size / read)


def measured_flops(hardware: dict | None) -> Peak | None:
    """The measured FLOP/s peak a run recorded, None where it recorded none."""
    peak = (hardware or {}).get("peak") or {}
    if not peak.get("flop_s"):
        return None
    how = f"{peak['dtype']} {peak['matmul_size']}x{peak['matmul_size']} matmul"
    if peak.get("cores"):
        how += (
            f": {flops_text(peak['flop_s_per_core'])} per core in CPU time x {peak['cores']} cores"
        )
    else:
        how += f" on {peak['device']}"
    return Peak(float(peak["flop_s"]), f"measured: {flops_text(peak['flop_s'])} ({how})")


def measured_bandwidth(hardware: dict | None) -> Peak | None:
    """The measured memory bandwidth a run recorded, None where it recorded none."""
    peak = (hardware or {}).get("peak") or {}
    if not peak.get("memory_bandwidth_bytes_s"):
        return None
    mib = int(peak.get("array_bytes") or 0) // 2**20
    return Peak(
        float(peak["memory_bandwidth_bytes_s"]),
        f"measured: {bytes_text(peak['memory_bandwidth_bytes_s'])} (best of copying and "
        f"summing {mib} MiB on {peak['device']})",
    )
