"""Energy over a timed region, from NVML's total-energy counter (NVIDIA GPUs, Volta on).

Where it cannot be measured the result is None with the reason: never an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EnergyReading:
    joules: float | None = None
    note: str | None = None  # why `joules` is None, or which devices were read


class EnergyMeter:
    """`with EnergyMeter() as meter: ...` then meter.reading; sums every visible GPU."""

    def __init__(self) -> None:
        self.reading = EnergyReading()
        self._nvml = None
        self._handles: list = []
        self._start: list[int] = []

    def start(self) -> EnergyMeter:
        return self.__enter__()

    def stop(self) -> EnergyReading:
        self.__exit__(None, None, None)
        return self.reading

    def __enter__(self) -> EnergyMeter:
        try:
            import pynvml  # nvidia-ml-py; optional

            pynvml.nvmlInit()
        except Exception as err:  # no package, no driver, no GPU: all mean "not measured"
            self.reading.note = f"no NVIDIA GPU (NVML unavailable: {type(err).__name__})"
            return self
        self._nvml = pynvml
        try:
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._start = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
        except Exception as err:
            self.reading.note = f"NVML energy counter unavailable: {err}"
            self._handles = []
        if not self._handles and self.reading.note is None:
            self.reading.note = "no NVIDIA GPU (NVML sees no device)"
        return self

    def __exit__(self, *_exc) -> None:
        if self._nvml is None:
            return
        try:
            if self._handles:
                end = [self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
                millijoules = sum(b - a for a, b in zip(self._start, end, strict=True))
                self.reading = EnergyReading(millijoules / 1000, f"NVML, {len(end)} GPU(s)")
        except Exception as err:
            self.reading = EnergyReading(None, f"NVML energy counter unavailable: {err}")
        finally:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
