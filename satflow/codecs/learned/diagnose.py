"""Where a `vaeformer` checkpoint's error comes from: the transform's own floor against latent
quantisation, cells next to gaps, the block edges (padding) and steep edges of the field.

    report = diagnose(codec, x, mask)   # x, mask (time, feature, lat, lon); x NaN where invalid

All errors are in physical units over valid points. Keys:
- `coded`: RMSE / max error of real streams (container-free payloads, the codec's qstep);
- `unquantised`, `quantised`: the same model with the latent y left continuous or rounded around the
  hyperprior mean (the forward pass of `coded`); their gap is what the latent quantisation costs;
- `no_refine`: the unquantised synthesis without its mask-aware refinement (None without one);
- `by_gap_distance`: RMSE by Chebyshev distance (cells) to the nearest invalid cell of the feature;
- `by_block_edge_distance`: RMSE by distance to the block's edge (padding is added bottom/right);
- `steep_edges`: cells whose value differs from a valid 8-neighbour by more than `steep` standard
  deviations of the feature (land/sea contrast in window channels), their share of the squared error
  and of the errors larger than `large` standard deviations;
- `per_feature`: RMSE and max error of `coded` per feature.
"""

from __future__ import annotations

import numpy as np
import torch

from satflow.codecs.learned.codec import VAEformerCodec, pad_to_multiple

GAP_BINS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, None))
EDGE_BINS = ((0, 1), (2, 3), (4, 7), (8, None))


def _rmse_max(err: np.ndarray) -> dict:
    err = err[np.isfinite(err)]
    if not err.size:
        return {"n": 0, "rmse": None, "max_abs_error": None}
    return {"n": int(err.size), "rmse": float(np.sqrt(np.mean(err**2))), "max_abs_error": float(np.abs(err).max())}


def _dilate(cells: np.ndarray) -> np.ndarray:
    """8-neighbour dilation of a boolean (..., H, W) array (no wrap)."""
    padded = np.pad(cells, [(0, 0)] * (cells.ndim - 2) + [(1, 1), (1, 1)])
    h, w = cells.shape[-2:]
    out = np.zeros_like(cells)
    for a in range(3):
        for b in range(3):
            out |= padded[..., a : a + h, b : b + w]
    return out


def gap_distance(valid: np.ndarray, limit: int = 64) -> np.ndarray:
    """Chebyshev distance (cells) of each cell of (..., H, W) to the nearest invalid cell: 0 on
    invalid cells, `limit` where none is within limit - 1."""
    distance = np.full(valid.shape, limit, dtype=np.int32)
    reached = ~valid
    distance[reached] = 0
    for step in range(1, limit):
        grown = _dilate(reached)
        distance[grown & ~reached] = step
        if grown.all() or (grown == reached).all():
            break
        reached = grown
    return distance


def edge_distance(height: int, width: int) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.minimum.reduce([rows, cols, height - 1 - rows, width - 1 - cols])


def neighbour_jump(x: np.ndarray) -> np.ndarray:
    """Largest |difference| to a valid 8-neighbour, per cell of (..., H, W) (NaN = invalid; 0 there)."""
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], constant_values=np.nan)
    h, w = x.shape[-2:]
    jump = np.zeros(x.shape, dtype=np.float64)
    for a in range(3):
        for b in range(3):
            jump = np.fmax(jump, np.abs(padded[..., a : a + h, b : b + w] - x))
    return jump


@torch.no_grad()
def forward_variants(codec: VAEformerCodec, x: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Physical reconstructions of one block (F, H, W) with y unquantised, quantised, and (when the
    model has one) without the refinement."""
    model = codec.checkpoint.model.eval()
    _, height, width = x.shape
    normalised = torch.from_numpy(codec._normalise(np.nan_to_num(x), mask))[None]
    valid = torch.from_numpy((mask != 0).astype(np.float32))[None]
    normalised, valid = pad_to_multiple(normalised, valid, model.config.downsampling)
    normalised, valid = normalised.to(codec.device), valid.to(codec.device)
    y = model.analysis(normalised, valid)
    mean, _ = model.hyper_synthesis(torch.round(model.hyper_analysis(y)))
    variants = {"unquantised": y, "quantised": torch.round((y - mean) / codec.qstep) * codec.qstep + mean}
    out = {name: model.synthesis(latent, valid) for name, latent in variants.items()}
    if model.synthesis.refine is not None:
        synthesis, refine = model.synthesis, model.synthesis.refine
        model.synthesis.refine = None
        try:
            out["no_refine"] = synthesis(y, valid)
        finally:
            model.synthesis.refine = refine
    scale, offset = codec.std[:, None, None], codec.mean[:, None, None]
    return {name: v[0, :, :height, :width].float().cpu().numpy() * scale + offset for name, v in out.items()}


def diagnose(codec: VAEformerCodec, x: np.ndarray, mask: np.ndarray, *, steep: float = 1.0,
             large: float = 0.5) -> dict:
    """The report described in the module docstring for blocks x, mask (time, feature, lat, lon)."""
    x = np.asarray(x, dtype=np.float32)
    valid = np.asarray(mask) != 0
    x = np.where(valid, x, np.nan)
    payloads = codec.encode_payloads(list(np.nan_to_num(x)), list(valid.astype(np.uint8)))
    coded = np.stack(codec.decode_payloads(payloads, list(valid.astype(np.uint8))))
    variants: dict[str, list[np.ndarray]] = {}
    for block, block_mask in zip(x, valid):
        for name, values in forward_variants(codec, block, block_mask.astype(np.uint8)).items():
            variants.setdefault(name, []).append(values)
    error = np.where(valid, coded - x, np.nan)
    report = {
        "bits_per_value_payload": 8.0 * sum(map(len, payloads)) / x.size,
        "qstep": codec.qstep,
        "coded": _rmse_max(error),
        **{name: _rmse_max(np.where(valid, np.stack(v) - x, np.nan)) for name, v in variants.items()},
    }
    report.setdefault("no_refine", None)
    distance = gap_distance(valid)
    report["by_gap_distance"] = {
        f"{lo}-{hi or 'more'}": _rmse_max(error[(distance >= lo) & (distance <= (hi or distance.max()))])
        for lo, hi in GAP_BINS}
    edge = np.broadcast_to(edge_distance(*x.shape[-2:]), x.shape)
    report["by_block_edge_distance"] = {
        f"{lo}-{hi or 'more'}": _rmse_max(error[(edge >= lo) & (edge <= (hi or edge.max()))]) for lo, hi in EDGE_BINS}
    std = codec.std[None, :, None, None].astype(np.float64)
    steep_cells = valid & (neighbour_jump(x) > steep * std)
    squared = np.nan_to_num(error.astype(np.float64)) ** 2
    big = np.abs(np.nan_to_num(error)) > large * std
    report["steep_edges"] = {
        "threshold_std": steep, "large_error_std": large,
        "share_of_valid_cells": float(steep_cells.sum() / max(valid.sum(), 1)),
        "share_of_squared_error": float(squared[steep_cells].sum() / max(squared.sum(), 1e-300)),
        "share_of_large_errors": float((big & steep_cells).sum() / max(big.sum(), 1)),
        "error": _rmse_max(error[steep_cells]), "elsewhere": _rmse_max(error[valid & ~steep_cells]),
    }
    report["per_feature"] = {
        name: _rmse_max(error[:, f]) for f, name in enumerate(codec.features)}
    return report
