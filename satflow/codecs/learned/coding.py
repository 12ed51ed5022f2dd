"""Real bitstreams for VAEformerLite: batched compress / decompress of normalised, padded tensors.

Determinism: the only model outputs the entropy *decoder* depends on are the hyper-latent
symbols (integers, coded with stored integer tables) and the scale-table indices. The indices
come from the hyper-synthesis evaluated on CPU in float64 by encoder and decoder alike, then
snapped to the fixed scale table, so a float difference could change an index only if a scale
fell within ~1e-15 (relative) of a table boundary. The analysis transform may run anywhere (GPU,
any precision): its output is only ever seen as the integers it is rounded to. On a GPU both
transforms run in full float32 (no TF32), so that streams and reconstructions stay close to the
CPU's: measured on an H200 with the shipped checkpoint, a GPU stream decoded on the CPU and on the
GPU differed by up to 0.099 K with TF32 (PyTorch's default for convolutions) and 6e-5 K without.

Payload of one block: sections [range-coded words (z then y), escaped values (int32, zstd)].
"""

from __future__ import annotations

import contextlib
import copy
import threading

import numpy as np
import torch
from numcodecs import Zstd

from satflow.codecs.base import pack_sections, unpack_sections
from satflow.codecs.container import ContainerError
from satflow.codecs.learned.model import HYPER_DOWNSAMPLING, VAEformerLite
from satflow.codecs.learned.rangecoder import (
    SYMBOL_LIMIT,
    EscapeReader,
    TableModels,
    encode_symbols,
    decode_symbols,
    finish,
    new_decoder,
    new_encoder,
)
from satflow.codecs.learned.tables import scale_indexes


class LatentCoder:
    """Entropy coding of a VAEformerLite's latents; `model.update()` must have built its tables."""

    def __init__(self, model: VAEformerLite, device: str | torch.device = "cpu") -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        # The table-deciding half of the model, pinned to CPU float64 (see module docstring).
        self.hyper64 = copy.deepcopy(model.hyper_synthesis).to("cpu", torch.float64).eval()
        self.z_models = TableModels(*model.entropy_bottleneck.tables())
        self.y_models = TableModels(*model.gaussian.tables())
        self.scale_table = model.gaussian.scale_table.cpu().numpy()

    def latent_shapes(self, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes (C, h, w) of y and z for a padded input of height x width."""
        cfg = self.model.config
        yh, yw = height // cfg.patch_size, width // cfg.patch_size
        zh, zw = yh // HYPER_DOWNSAMPLING, yw // HYPER_DOWNSAMPLING
        return (cfg.latent_channels, yh, yw), (cfg.hyper_channels, zh, zw)

    @torch.no_grad()
    def y_parameters(self, z_symbols: np.ndarray, qstep: float) -> tuple[np.ndarray, np.ndarray]:
        """float64 means of y and scale-table indices for a batch of hyper-latent symbols.

        One block at a time: a kernel may round differently for another batch size, and the
        decoder of one block must not depend on which blocks it was encoded with.
        """
        means, indexes = [], []
        for z in z_symbols:
            mean, scale = self.hyper64(torch.from_numpy(z[None].astype(np.float64)))
            means.append(mean.numpy())
            indexes.append(scale_indexes(scale.numpy() / qstep, self.scale_table))
        return np.concatenate(means), np.concatenate(indexes)

    @torch.no_grad()
    def compress(self, x: torch.Tensor, mask: torch.Tensor, qstep: float = 1.0) -> list[bytes]:
        """Payloads for a batch x, mask (B, F, H, W) (normalised, invalid = 0, padded)."""
        self.model.check_input(x)
        x, mask = x.to(self.device, torch.float32), mask.to(self.device, torch.float32)
        with full_float32(self.device):
            y = self.model.analysis(x, mask)
            z = self.model.hyper_analysis(y)
        z_symbols = _to_symbols(z.double().cpu().numpy())
        mean, indexes = self.y_parameters(z_symbols, qstep)
        y_symbols = _to_symbols((y.double().cpu().numpy() - mean) / qstep)
        z_tables = _channel_index(z_symbols.shape[1:])
        return [self._encode_one(zs, z_tables, ys, ix) for zs, ys, ix in zip(z_symbols, y_symbols, indexes)]

    def _encode_one(self, z_sym: np.ndarray, z_tables: np.ndarray, y_sym: np.ndarray, y_tables: np.ndarray) -> bytes:
        encoder, escapes = new_encoder(), []
        encode_symbols(encoder, z_sym, z_tables, self.z_models, escapes)
        encode_symbols(encoder, y_sym, y_tables, self.y_models, escapes)
        escaped = np.concatenate(escapes).astype("<i4") if escapes else np.zeros(0, "<i4")
        escape_bytes = bytes(Zstd(level=3).encode(escaped.tobytes())) if escaped.size else b""
        return pack_sections([finish(encoder), escape_bytes])

    def decode_latents(self, payloads: list[bytes], height: int, width: int, qstep: float = 1.0) -> torch.Tensor:
        """y_hat (B, C, h, w) float32 on CPU for payloads of padded blocks of height x width."""
        y_shape, z_shape = self.latent_shapes(height, width)
        readers = []
        z_batch = np.empty((len(payloads), *z_shape), dtype=np.int64)
        z_tables = _channel_index(z_shape)
        for i, payload in enumerate(payloads):
            words, escape_bytes = unpack_sections(payload, expected=2)
            escaped = np.frombuffer(Zstd().decode(escape_bytes), "<i4") if escape_bytes else np.zeros(0, "<i4")
            decoder, escapes = new_decoder(words), EscapeReader(escaped)
            z_batch[i] = decode_symbols(decoder, z_tables, self.z_models, escapes)
            readers.append((decoder, escapes))
        mean, indexes = self.y_parameters(z_batch, qstep)
        y_hat = np.empty((len(payloads), *y_shape), dtype=np.float64)
        for i, (decoder, escapes) in enumerate(readers):
            y_hat[i] = decode_symbols(decoder, indexes[i], self.y_models, escapes) * qstep + mean[i]
        return torch.from_numpy(y_hat.astype(np.float32))

    @torch.no_grad()
    def decompress(self, payloads: list[bytes], mask: torch.Tensor, qstep: float = 1.0) -> torch.Tensor:
        """Normalised reconstructions (B, F, H, W) on CPU; `mask` is the padded validity (B, F, H, W)."""
        try:
            y_hat = self.decode_latents(payloads, mask.shape[2], mask.shape[3], qstep)
        except (ValueError, RuntimeError) as err:
            raise ContainerError(f"learned payload does not decode ({err})") from err
        y_hat, mask = y_hat.to(self.device), mask.to(self.device, torch.float32)
        if self.device.type == "cuda":  # batched for speed; GPU kernels are not bitwise batch-invariant anyway
            with full_float32(self.device):
                return self.model.synthesis(y_hat, mask).float().cpu()
        # On CPU one block at a time, so that a block decodes to the same bits whichever batch it
        # is in (oneDNN convolutions round differently for other batch sizes); the error-bounded
        # wrapper relies on it.
        return torch.cat([self.model.synthesis(y_hat[i : i + 1], mask[i : i + 1]) for i in range(len(y_hat))]).float()


_TF32_FLAGS = threading.Lock()


@contextlib.contextmanager
def full_float32(device: torch.device):
    """TF32 off for cuDNN convolutions and matrix products while the transforms run on a GPU.

    The flags are process-wide: one lock keeps threads of a worker from restoring them under each
    other (which would leave another thread's transform on TF32, or the process with TF32 off), and
    they are restored on the way out. The GPU runs one transform at a time anyway; entropy coding,
    outside the lock, stays parallel.
    """
    if device.type != "cuda":
        yield
        return
    with _TF32_FLAGS:
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _to_symbols(values: np.ndarray) -> np.ndarray:
    """Round to int64 symbols; non-finite values (from absurd inputs) become the clip limit."""
    values = np.nan_to_num(values, nan=0.0, posinf=SYMBOL_LIMIT, neginf=-SYMBOL_LIMIT)
    return np.rint(np.clip(values, -SYMBOL_LIMIT, SYMBOL_LIMIT)).astype(np.int64)


def _channel_index(shape: tuple[int, ...]) -> np.ndarray:
    """Table index = channel, for the factorised z tables."""
    return np.broadcast_to(np.arange(shape[0], dtype=np.int32)[:, None, None], shape)
