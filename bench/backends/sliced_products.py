"""Generation's few rows times a large weight matrix, in slices of its output features.

To multiply a few rows (a decode step's 8, say) by a weight matrix, MKL packs the whole
matrix into a buffer first. For SmolLM2's output layer (49,152 x 576, 113 MB) that costs
more than the arithmetic: 113 MB read, written and read again for 8 rows. In slices of
at most 2 MB (512 rows, 1.1 MB, for SmolLM2) each packed slice stays in the cache: 46 ->
23 ms for 8 rows on the 2-core machine, 1.1-2x for the output layers and large
projections of 0.1-2B models, no change for hundreds of rows. The slices split the
output features, never a sum, so every output is the same sum in the same order: bit for
bit lm-eval's. That rests on the BLAS library choosing the same kernel for a slice as for
the whole, so the first product of each shape is computed both ways and compared; where
the bits differ, the plain product stays.

Only generation's inputs are sliced (one position per row, as in every decode step and
the prefill's last position): their row count is the batch's, so each batch size costs
one check, where scoring's row counts vary from batch to batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SLICE_BYTES = 2 << 20  # fits the L2 or L3 cache of a CPU core
MIN_WEIGHT_BYTES = 16 << 20  # smaller matrices (SmolLM2's 3.5 MB projections): no gain


class SlicedProduct:
    """A linear layer's forward: few rows go through the weight matrix in slices."""

    def __init__(self, layer: torch.nn.Linear) -> None:
        self.layer = layer
        # A power of two: slices of 910 rows (2 MB of SmolLM2's) gave other bits in tests
        # on the 2-core machine, slices of 256, 512 or 1024 gave the whole's.
        rows = max(1, SLICE_BYTES // (layer.in_features * layer.weight.element_size()))
        step = 1 << (rows.bit_length() - 1)
        self.parts = [slice(a, a + step) for a in range(0, layer.out_features, step)]
        self.same_bits: dict[tuple[int, int], bool] = {}  # (rows, threads) -> checked

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.layer.weight, self.layer.bias
        key = (x.shape[0], torch.get_num_threads())
        if x.dim() != 3 or x.shape[1] != 1 or self.same_bits.get(key) is False:
            return F.linear(x, weight, bias)
        sliced = torch.cat(
            [F.linear(x, weight[p], None if bias is None else bias[p]) for p in self.parts],
            dim=-1,
        )
        if key not in self.same_bits:
            plain = F.linear(x, weight, bias)
            self.same_bits[key] = torch.equal(sliced, plain)
            return plain
        return sliced


def slice_large_products(model: torch.nn.Module) -> None:
    """Give the model's large linear layers on a CPU sliced products."""
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.device.type == "cpu":
            if module.weight.numel() * module.weight.element_size() >= MIN_WEIGHT_BYTES:
                module.forward = SlicedProduct(module)
