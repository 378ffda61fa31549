"""What the run ran on: package versions and hardware, recorded in every manifest."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path

from bench.hardware.peak import measure, run_target

PACKAGES = ("bench", "lm_eval", "torch", "transformers", "datasets", "accelerate")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _memory_gib() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0.0
    return round(pages / 2**30, 1)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(settings=None, model_path: Path | None = None) -> dict:
    """This machine. With a run's `settings` (and its model's path), also the peaks its
    model's device can attain in the run's dtype, measured now (bench/hardware/peak.py):
    info["peak"], the MFU and MBU denominators where the hardware profile declares none;
    {"error": ...} where the measurement failed (a run never fails for it)."""
    info: dict = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
    }
    names = _gpu_names()
    if names:
        info["gpu"] = names[0]
        info["gpu_count"] = len(names)
    if settings is not None:
        target = run_target(settings.backend, settings.model_args, model_path, bool(names))
        if target is not None:
            try:
                info["peak"] = measure(target)
            except Exception as err:  # no torch, an odd device or dtype: no measured peak
                info["peak"] = {"error": f"{type(err).__name__}: {err}"}
    return info


def _gpu_names() -> list[str]:
    """Names of the visible GPUs. torch answers once a backend has imported it; before
    that NVML does, so a run does not pay torch's import (2 s) before its model load."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    try:
        import pynvml  # nvidia-ml-py; optional

        pynvml.nvmlInit()
    except Exception:  # not installed, no driver, no GPU
        return []
    try:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        indices = range(pynvml.nvmlDeviceGetCount())
        if visible is not None:
            indices = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except Exception:
        return []
    finally:
        pynvml.nvmlShutdown()
