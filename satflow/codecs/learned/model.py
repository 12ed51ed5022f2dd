"""VAEformerLite: a small transformer autoencoder with a mean-scale hyperprior.

    x, mask (B, F, H, W), normalised, invalid = 0
      -> analysis: patch-embedding conv (stride p) + windowed transformer blocks -> y (B, C, H/p, W/p)
      -> hyper-analysis (two stride-2 convs) -> z (B, Cz, H/4p, W/4p), factorised entropy bottleneck
      -> hyper-synthesis -> mean and scale of y, Gaussian conditional
      -> synthesis: transformer blocks + pixel shuffle (+ a mask-conditioned refinement) -> x_hat

H and W must be multiples of `ModelConfig.downsampling` (the codec pads and crops). The
hyper-synthesis uses only piecewise-linear activations so that its float64 CPU evaluation, the one
that decides coding tables, is as reproducible across machines as arithmetic allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from satflow.codecs.learned.entropy import EntropyBottleneck, GaussianConditional
from satflow.codecs.options import ArchitectureConfig

HYPER_DOWNSAMPLING = 4  # two stride-2 convolutions between y and z


class ModelConfig(ArchitectureConfig):
    """Architecture of a VAEformerLite model (stored in every checkpoint)."""

    n_features: int = Field(..., gt=0, description="input features (channels)")

    @property
    def downsampling(self) -> int:
        """Input sides must be multiples of this."""
        return self.patch_size * HYPER_DOWNSAMPLING


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of tokens (optionally shifted)."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dim {dim} is not divisible by heads {heads}")
        self.heads, self.window, self.shift = heads, window, shift
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, D)
        batch, height, width, dim = x.shape
        w = self.window
        if self.shift:  # cyclic: on a global lat/lon grid the east-west wrap is even physical
            x = torch.roll(x, shifts=(-(w // 2), -(w // 2)), dims=(1, 2))
        pad_h, pad_w = -height % w, -width % w
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = height + pad_h, width + pad_w
        windows = x.reshape(batch, hp // w, w, wp // w, w, dim).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, dim)
        qkv = self.qkv(windows).reshape(windows.shape[0], w * w, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn_mask = None
        if pad_h or pad_w:  # padded tokens are never attended to
            valid = torch.zeros(hp, wp, dtype=torch.bool, device=x.device)
            valid[:height, :width] = True
            valid = valid.reshape(hp // w, w, wp // w, w).permute(0, 2, 1, 3).reshape(-1, 1, 1, w * w)
            attn_mask = valid.repeat(batch, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.proj(out.transpose(1, 2).reshape(-1, w * w, dim))
        out = out.reshape(batch, hp // w, wp // w, w, w, dim).permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, dim)
        out = out[:, :height, :width]
        if self.shift:
            out = torch.roll(out, shifts=(w // 2, w // 2), dims=(1, 2))
        return out


class ConvMLP(nn.Module):
    """Token MLP with a depth-wise 3x3 conv: gives the blocks locality and position information."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, D)
        h = self.fc1(x).permute(0, 3, 1, 2)
        h = F.gelu(self.dwconv(h)).permute(0, 2, 3, 1)
        return self.fc2(h)


class TransformerBlock(nn.Module):
    def __init__(self, config: ModelConfig, shift: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = WindowAttention(config.dim, config.heads, config.window, shift)
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = ConvMLP(config.dim, int(config.dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _blocks(config: ModelConfig) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(config, shift=bool(i % 2)) for i in range(config.depth)))


class Analysis(nn.Module):
    """(values, mask) -> y: patch embedding, transformer blocks, linear head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.embed = nn.Conv2d(2 * config.n_features, config.dim, kernel_size=p, stride=p)
        self.blocks = _blocks(config)
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.latent_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(torch.cat([x, mask], dim=1)).permute(0, 2, 3, 1)
        return self.head(self.norm(self.blocks(tokens))).permute(0, 3, 1, 2)


class Synthesis(nn.Module):
    """(y_hat, mask) -> x_hat: transformer blocks, pixel shuffle, optional mask-aware refinement.

    The mask is free side information here: the container stores it losslessly anyway.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        p, n = config.patch_size, config.n_features
        self.embed = nn.Linear(config.latent_channels, config.dim)
        self.blocks = _blocks(config)
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, n * p * p)
        self.shuffle = nn.PixelShuffle(p)
        self.refine = None
        if config.refine_channels:
            self.refine = nn.Sequential(
                nn.Conv2d(2 * n, config.refine_channels, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(config.refine_channels, n, 3, padding=1),
            )

    def forward(self, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        tokens = self.blocks(self.embed(y.permute(0, 2, 3, 1)))
        x = self.shuffle(self.head(self.norm(tokens)).permute(0, 3, 1, 2))
        if self.refine is not None:
            x = x + self.refine(torch.cat([x, mask], dim=1))
        return x


class HyperAnalysis(nn.Sequential):
    def __init__(self, config: ModelConfig) -> None:
        c, h = config.latent_channels, config.hyper_hidden
        super().__init__(
            nn.Conv2d(c, h, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(h, h, 5, stride=2, padding=2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(h, config.hyper_channels, 5, stride=2, padding=2),
        )


class HyperSynthesis(nn.Module):
    """z_hat -> (mean, scale) of y; piecewise-linear activations only (see module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, h = config.latent_channels, config.hyper_hidden
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(config.hyper_channels, h, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(h, h, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(h, 2 * c, 3, padding=1),
        )

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_scale = self.layers(z_hat).chunk(2, dim=1)
        return mean, F.softplus(raw_scale)


@dataclass
class ModelOutput:
    x_hat: torch.Tensor
    y_likelihood: torch.Tensor
    z_likelihood: torch.Tensor


class VAEformerLite(nn.Module):
    """The full model; `forward` is for training, coding goes through `satflow.codecs.learned.coding`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.analysis = Analysis(config)
        self.synthesis = Synthesis(config)
        self.hyper_analysis = HyperAnalysis(config)
        self.hyper_synthesis = HyperSynthesis(config)
        self.entropy_bottleneck = EntropyBottleneck(config.hyper_channels)
        self.gaussian = GaussianConditional()

    def check_input(self, x: torch.Tensor) -> None:
        d = self.config.downsampling
        if x.ndim != 4 or x.shape[1] != self.config.n_features or x.shape[2] % d or x.shape[3] % d:
            raise ValueError(
                f"model input must be (batch, {self.config.n_features}, H, W) with H and W multiples of {d}; "
                f"got {tuple(x.shape)} (the codec pads blocks for you)"
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> ModelOutput:
        """x: normalised values with invalid points at 0; mask: float 0/1, same shape."""
        self.check_input(x)
        y = self.analysis(x, mask)
        # Entropy models stay in float32 under mixed precision: likelihoods need the precision.
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = y.float()
            z = self.hyper_analysis(y)
            z_hat, z_likelihood = self.entropy_bottleneck(z)
            mean, scale = self.hyper_synthesis(z_hat)
            y_hat, y_likelihood = self.gaussian(y, mean, scale)
        return ModelOutput(self.synthesis(y_hat, mask), y_likelihood, z_likelihood)

    def entropy_parameters(self) -> list[nn.Parameter]:
        """Parameters trained in the `finetune-entropy` stage (hyperprior and entropy models)."""
        modules = (self.hyper_analysis, self.hyper_synthesis, self.entropy_bottleneck, self.gaussian)
        return [p for m in modules for p in m.parameters()]

    def update(self) -> None:
        """Build the integer coding tables from the current entropy models (call before coding)."""
        self.entropy_bottleneck.update()
        self.gaussian.update()
