"""Entropy models of the hyperprior codec (written here in torch; CompressAI pins numpy<2).

- `EntropyBottleneck`: a learned factorised density per channel for the hyper-latent `z`
  (Ballé et al. 2018, the CompressAI design). `update()` turns it into integer pmf tables.
- `GaussianConditional`: mean-scale Gaussian for the latent `y`; coding snaps each predicted
  scale to a fixed log-spaced table whose integer pmfs are built once at `update()`.

Both keep their integer tables as buffers, so the tables travel in the checkpoint (and in its
weights fingerprint) and encoder and decoder never recompute probabilities from floats.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from satflow.codecs.learned.tables import default_scale_table, gaussian_table, pad_tables, quantize_pmf

LIKELIHOOD_BOUND = 1e-9  # keeps -log2(likelihood) finite for the rate term


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


class _TableBuffers(nn.Module):
    """Integer pmf tables as resizable buffers: counts (n, width), lengths (n,), offsets (n,)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table_counts", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("table_lengths", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("table_offsets", torch.zeros(0, dtype=torch.int32))

    def set_tables(self, tables: list[np.ndarray], offsets: list[int]) -> None:
        counts, lengths = pad_tables(tables)
        self.table_counts = torch.from_numpy(counts)
        self.table_lengths = torch.from_numpy(lengths)
        self.table_offsets = torch.tensor(offsets, dtype=torch.int32)

    @property
    def has_tables(self) -> bool:
        return self.table_lengths.numel() > 0

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counts, lengths, offsets) as numpy int arrays, for the range coder."""
        if not self.has_tables:
            raise RuntimeError(f"{type(self).__name__} has no coding tables; call model.update() first")
        return (self.table_counts.cpu().numpy(), self.table_lengths.cpu().numpy(), self.table_offsets.cpu().numpy())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # Tables have data-dependent sizes: take the stored shapes before the strict copy.
        for name in ("table_counts", "table_lengths", "table_offsets"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.zeros_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class EntropyBottleneck(_TableBuffers):
    """Factorised learned density for `channels` hyper-latent channels (coded as round(z))."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(widths) - 1):
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))

    def logits_cumulative(self, values: torch.Tensor) -> torch.Tensor:
        """Logit of the learned CDF at `values` of shape (channels, 1, n)."""
        logits = values
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(F.softplus(matrix.to(values.dtype)), logits) + bias.to(values.dtype)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i].to(values.dtype)) * torch.tanh(logits)
        return logits

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(round-bin around z) per element of z (batch, channels, h, w)."""
        flat = z.permute(1, 0, 2, 3).reshape(self.channels, 1, -1)
        lower = self.logits_cumulative(flat - 0.5)
        upper = self.logits_cumulative(flat + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the flat tail for precision
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.reshape(self.channels, z.shape[0], z.shape[2], z.shape[3]).permute(1, 0, 2, 3)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (z rounded with a straight-through gradient, likelihood of z + uniform noise)."""
        noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else torch.round(z)
        return ste_round(z), self.likelihood(noisy)

    @torch.no_grad()
    def update(self, tail_mass: float = 1e-9, search_range: int = 4096) -> None:
        """Build each channel's integer pmf over the integers that hold all but `tail_mass`."""
        grid = torch.arange(-search_range, search_range + 1, dtype=torch.float64)
        edges = torch.cat([grid - 0.5, grid[-1:] + 0.5]).expand(self.channels, 1, -1).contiguous()
        cdf = torch.sigmoid(self.logits_cumulative(edges)).squeeze(1).numpy()  # (channels, n+1)
        tables, offsets = [], []
        for row in cdf:
            pmf = np.diff(row).clip(min=0.0)
            inside = np.flatnonzero((row[1:] > tail_mass / 2) & (row[:-1] < 1 - tail_mass / 2))
            lo, hi = (inside[0], inside[-1]) if inside.size else (search_range, search_range)
            escape = max(1.0 - pmf[lo : hi + 1].sum(), 0.0)
            tables.append(quantize_pmf(np.append(pmf[lo : hi + 1], escape)))
            offsets.append(int(grid[lo]))
        self.set_tables(tables, offsets)


class GaussianConditional(_TableBuffers):
    """Mean-scale Gaussian conditional; coding uses the fixed scale table (see tables.py)."""

    def __init__(self, scale_bound: float | None = None) -> None:
        super().__init__()
        table = default_scale_table()
        self.register_buffer("scale_table", torch.from_numpy(table))  # float64, fixed
        self.scale_bound = float(table[0]) if scale_bound is None else scale_bound

    def likelihood(self, y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """P(round-bin around y) under N(mean, scale), scale bounded below like the coding table."""
        scale = scale.clamp_min(self.scale_bound)
        values = torch.abs(y - mean)
        upper = _std_normal_cdf((0.5 - values) / scale)
        lower = _std_normal_cdf((-0.5 - values) / scale)
        return (upper - lower).clamp_min(LIKELIHOOD_BOUND)

    def forward(self, y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (y quantised around the mean with a straight-through gradient, likelihoods)."""
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else ste_round(y - mean) + mean
        return ste_round(y - mean) + mean, self.likelihood(noisy, mean, scale)

    @torch.no_grad()
    def update(self) -> None:
        """Integer pmfs of round(N(0, s)) for every s in the fixed scale table."""
        built = [gaussian_table(float(s)) for s in self.scale_table.numpy()]
        self.set_tables([t for t, _ in built], [-k for _, k in built])
