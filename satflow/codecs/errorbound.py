"""`errorbound`: wrap any codec (classic or learned) so that |x - x_rec| <= eps at every valid point.

Encoding runs the inner codec, decodes its payload, and quantises with step 2*eps what x_hat does
not explain (q = round(r / (2 eps)), so |r - 2 eps q| <= eps):

- context="causal" (default): r is the error of a closed-loop prediction from x_hat and from the
  values already reconstructed around the point, in its own and in earlier features
  (`satflow.codecs.prediction`). Invalid points cost nothing, and the inner codec may be as cheap
  as `constant`.
- context="learned": the same closed loop, predicted by the trained context network of a
  checkpoint (`satflow.codecs.learned.context`; `satflow train --stage context`) instead of
  per-block least squares.
- context="none": r = x - x_hat at every valid point (streams written before the context existed
  read back this way).

Stream version 5 (the header's `stream`: every stream written now) is version 4 with the residuals
coded by up to four interleaved rANS states, one per band of rows, whose contexts see no row above a
band's first row (`residuals.lanes_of`: one band per 16 k valid points and 32 rows, so small blocks
keep one and version 4's residual bytes; `kernels.rans_encode_lanes`): the decoder runs up to four
dependency chains side by side instead of one. Stream version 4 (written before version 5) is version 3's stream, or, on
blocks of at most `interpolation.TRIAL_FEATURES` features where it is shorter, SZ3 per feature at the
same bound with patches (`satflow.codecs.interpolation`; the payload's first byte says which), so
errorbound is never larger than SZ3 per feature there; its header leaves out the defaults
(inner "constant", no inner_params, context "causal").

The q are entropy-coded with static models fitted to their histograms, which travel in the stream.
Stream version 3 (written before version 4) has one model per feature, column
parity and context, the context being how large the q already decoded around the point are (its
left neighbour of the same parity, the one above, the same point of the previous feature; edges
`residuals.CONTEXT_SCHEMES`): residuals are large together (swath-gap edges, surface channels,
fronts), and coding them apart shortens AMSU-like streams by 9% / 13% at 0.5 / 1 K. Versions 2 and 3
use a compiled rANS coder (`satflow.codecs.residuals`, over `satflow.codecs.kernels`: integer
frequencies of 14 bits, one 32-bit state, 16-bit words; the counts themselves are in the stream, so
the decoder needs no floating point to rebuild the model); version 2 (written before version 3) has
one model per feature and column parity, and is version 3 with a single context. Version 1 (no
`stream` in the header) range-coded them with constriction's categorical models, one per feature
for context="none". Both still decode, and a
codec read from such a stream writes its version. Symbols outside a +-127 window go through an escape
symbol and a side stream. Reconstructions are computed in float64 and checked after the cast to float32; any
valid point still beyond eps is stored verbatim.

The decoder needs x_hat bit-identical to the encoder's, so a CRC-32 of x_hat is in the stream: a
non-deterministic inner decoder (other device, other weights) raises ContainerError instead of
returning numbers that may break the bound.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal, NamedTuple

import constriction
import numpy as np
from numcodecs import Zstd

from satflow.codecs import interpolation, kernels, prediction
from satflow.codecs.base import Codec, PositiveNumber, pack_sections, unpack_sections
from satflow.codecs.classic import apply_patches, pack_patches, per_feature
from satflow.codecs.container import ContainerError
from satflow.codecs.registry import codec_class, get_codec, parameter_docs, register_codec
from satflow.codecs.residuals import (WINDOW, decode_residuals, encode_residuals, residual_model, unzstd_int64,
                                      zstd_int64)

_LIMIT = prediction.LIMIT  # |q| beyond this is not worth coding: the point becomes a verbatim patch
CONTEXTS = ("causal", "learned", "none")
READABLE_VERSIONS = (1, 2, 3, 4, 5)
STREAM_VERSION = 5  # what this satflow writes (version 5: version 4 with interleaved rANS states)
# A version-4 header leaves out what is the default: inner "constant", no inner_params, context "causal".
_V4_DEFAULTS = {"inner": "constant", "inner_params": {}, "context": "causal"}


def _checksum(x_hat: np.ndarray, mask: np.ndarray) -> bytes:
    """CRC-32 of x_hat's valid values as little-endian float32, in raster order."""
    values = kernels.valid_values(np.ascontiguousarray(x_hat, np.float32), np.ascontiguousarray(mask != 0))
    return zlib.crc32(values.astype("<f4", copy=False)).to_bytes(4, "little")


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def encode_symbols(groups: list[np.ndarray]) -> tuple[bytes, bytes, bytes]:
    """Range-code integer groups (one per feature), each with its own fitted categorical model.

    Returns (tables, coded words, escaped values).
    """
    encoder = constriction.stream.queue.RangeEncoder()
    tables, escaped = [], []
    for q in groups:
        lo = int(max(q.min(initial=0), -WINDOW))
        hi = int(min(q.max(initial=0), WINDOW))
        inside = (q >= lo) & (q <= hi)
        symbols = np.where(inside, q - lo, hi - lo + 1).astype(np.int32)  # last symbol = escape
        counts = np.bincount(symbols, minlength=hi - lo + 2)
        tables.append(np.concatenate([[lo, hi], counts]))
        escaped.append(q[~inside])
        if q.size:
            encoder.encode(symbols, _model(counts.astype(np.float64)))
    words = encoder.get_compressed().astype("<u4").tobytes()
    return zstd_int64(np.concatenate(tables)), words, zstd_int64(np.concatenate(escaped))


def decode_symbols(sizes: list[int], tables: bytes, words: bytes, escaped: bytes) -> list[np.ndarray]:
    """Inverse of `encode_symbols`, given how many symbols each group holds."""
    table = unzstd_int64(tables, "symbol tables")
    extra = unzstd_int64(escaped, "escaped values")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(words, "<u4").copy())
    groups, at, used = [], 0, 0
    for size in sizes:
        if at + 2 > table.size:
            raise ContainerError("errorbound symbol tables are shorter than the block's features")
        lo, hi = int(table[at]), int(table[at + 1])
        counts = table[at + 2 : at + 2 + (hi - lo + 2)].astype(np.float64)
        at += 2 + hi - lo + 2
        if counts.sum() != size:
            raise ContainerError(f"errorbound table counts {int(counts.sum())} symbols, the mask has {size} valid points")
        symbols = decoder.decode(_model(counts), size).astype(np.int64) if size else np.zeros(0, np.int64)
        q = symbols + lo
        escapes = np.flatnonzero(symbols == hi - lo + 1)
        q[escapes] = extra[used : used + escapes.size]
        used += escapes.size
        groups.append(q)
    return groups


@register_codec("errorbound")
class ErrorBounded(Codec):
    """Error-bounded wrapper: any inner codec + range-coded residual, |x - x_rec| <= eps at every valid point."""

    param_docs = {
        "inner": "the wrapped codec: a registered name (or a Codec instance from Python)",
        "eps": "absolute error bound in data units: one number or one per feature",
        "inner_params": "keyword parameters of the inner codec when given by name (a missing tol defaults to eps)",
        "context": "'causal': code the error of a closed-loop prediction from x_hat and decoded "
                   "neighbours and features; 'learned': the same with the trained context network of "
                   "`checkpoint`; 'none': code x - x_hat point by point",
        "checkpoint": "context='learned': checkpoint with a context network (`satflow train --stage context`); "
                      "default: the inner codec's checkpoint",
    }
    param_types = {"eps": PositiveNumber | list[PositiveNumber], "context": Literal[CONTEXTS]}
    declares_bound = True
    worker_plugin = "satflow.codecs.warm:WarmKernels"
    wraps = "inner"
    needs_checkpoint = True  # its context network's, with context='learned' (else none of its own)
    checkpoint_when = {"context": "learned"}

    @classmethod
    def wrapped_params(cls, params: dict) -> dict:
        return _default_inner_params(params["inner"], params.get("inner_params"), params.get("eps"))

    def __init__(self, *, inner: str | Codec, eps: float | list[float], inner_params: dict | None = None,
                 context: str = "causal", checkpoint: str | None = None) -> None:
        values = np.atleast_1d(np.asarray(eps, dtype=np.float64))
        if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"errorbound: eps must be positive finite numbers, got {eps!r}")
        if isinstance(inner, str):
            inner = get_codec(inner, **_default_inner_params(inner, inner_params, eps))
        elif inner_params:
            raise ValueError("errorbound: inner_params only apply when inner is a codec name")
        if not isinstance(inner, Codec):
            raise ValueError(f"errorbound: inner must be a codec name or Codec instance, got {inner!r}")
        if context not in CONTEXTS:
            raise ValueError(f"errorbound: context must be one of {', '.join(CONTEXTS)}, got {context!r}")
        if checkpoint is not None and context != "learned":
            raise ValueError(f"errorbound: checkpoint only applies to context='learned', not {context!r}")
        self.inner = inner
        self.context_model = _context_model(inner, checkpoint) if context == "learned" else None
        params = {"checkpoint": str(self.context_model.path)} if self.context_model else {}
        super().__init__(inner=inner.name, inner_params=inner.params,
                         eps=float(eps) if np.ndim(eps) == 0 else values.tolist(), context=context, **params)
        self.stream_version = STREAM_VERSION  # a codec read from a container takes the container's
        self.sz3_trial = True  # version 4: also code blocks of few features with SZ3, keep the shorter (tests turn it off)

    def error_bound(self, n_features: int) -> np.ndarray:
        return per_feature(self._params["eps"], n_features, "errorbound eps")

    def container_params(self) -> dict:
        if self.stream_version >= 4:  # a compact header: on small blocks it is a large share of the bytes
            params = {"inner": self.inner.name, "inner_params": self.inner.container_params(),
                      "context": self._params["context"]}
            params = {key: value for key, value in params.items() if value != _V4_DEFAULTS[key]}
            params.update(eps=self._params["eps"], stream=self.stream_version)
            if self.context_model:
                params["predictor"] = self.context_model.fingerprint
            return params
        params = {"inner": self.inner.name, "inner_params": self.inner.container_params(), "eps": self._params["eps"]}
        if self._params["context"] != "none":  # context="none" headers stay exactly as before contexts existed
            params["context"] = self._params["context"]
        if self.context_model:  # no local path in the stream: the fingerprint identifies the network
            params["predictor"] = self.context_model.fingerprint
        if self.stream_version != 1:  # version 1 headers stay exactly as they were written
            params["stream"] = self.stream_version
        return params

    @classmethod
    def from_container_params(cls, params: dict, **context: Any) -> ErrorBounded:
        stream = params.get("stream", 1)  # streams without it: version 1
        if stream not in READABLE_VERSIONS:
            raise ContainerError(f"errorbound stream version {stream!r} is not one this satflow reads "
                                 f"({', '.join(map(str, READABLE_VERSIONS))}); a newer satflow wrote it: "
                                 "upgrade satflow")
        if stream >= 4:
            params = {**_V4_DEFAULTS, **params}
        inner = codec_class(params["inner"]).from_container_params(params["inner_params"], **context)
        mode = params.get("context", "none")  # older streams: none
        checkpoint = context.get("checkpoint") if mode == "learned" else None
        if mode == "learned" and not checkpoint and not hasattr(inner, "checkpoint"):
            raise ContainerError(
                f"container was written by errorbound with a learned context (network fingerprint "
                f"{params.get('predictor')}); pass checkpoint=<the checkpoint that encoded it> to decode it "
                "(`satflow decode --checkpoint DIR`)")
        codec = cls(inner=inner, eps=params["eps"], context=mode, checkpoint=checkpoint)
        if mode == "learned" and params.get("predictor") != codec.context_model.fingerprint:
            raise ContainerError(
                f"container was encoded with context network {params.get('predictor')}, but checkpoint "
                f"{codec.context_model.path} has {codec.context_model.fingerprint}; decode with the checkpoint "
                "that encoded it")
        codec.stream_version = stream
        return codec

    def describe(self) -> str:
        return (f"errorbound(eps={self._params['eps']!r}, context={self._params['context']!r}, "
                f"inner={self.inner.describe()})")

    def _steps(self, n_features: int) -> tuple[np.ndarray, np.ndarray]:
        eps = per_feature(self._params["eps"], n_features, "errorbound eps")
        return eps, 2.0 * eps

    def encode_payloads(self, xs: list[np.ndarray], masks: list[np.ndarray]) -> list[bytes]:
        inner_payloads = self.inner.encode_payloads(xs, masks)
        x_hats = self.inner.decode_payloads(inner_payloads, masks)
        payloads = [self._encode_residual(*args) for args in zip(xs, masks, inner_payloads, x_hats)]
        if self.stream_version < 4:
            return payloads
        return [self._shorter(payload, x, mask) for payload, x, mask in zip(payloads, xs, masks)]

    def _shorter(self, predictive: bytes, x: np.ndarray, mask: np.ndarray) -> bytes:
        """Version 4: the predictive payload, or SZ3's where the block has few features and SZ3's is
        shorter (`satflow.codecs.interpolation`); the predictive one on a tie."""
        if not self.sz3_trial or self._params["context"] != "causal" or x.shape[0] > interpolation.TRIAL_FEATURES:
            return predictive
        try:
            alternative = interpolation.encode_sz3(x, mask, self._steps(x.shape[0])[0])
        except Exception:  # noqa: BLE001 - SZ3 refusing a block (pysz raises several types) must not fail
            return predictive  # an encode that versions 1-3 could do: the predictive stream is always valid
        return alternative if len(alternative) < len(predictive) else predictive

    def decode_payloads(self, payloads: list[bytes], masks: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(payloads)
        if self.stream_version >= 4:
            for k, (payload, mask) in enumerate(zip(payloads, masks)):
                if interpolation.is_sz3(payload):
                    out[k] = interpolation.decode_sz3(payload, mask, self._steps(mask.shape[0])[0])
        todo = [k for k in range(len(payloads)) if out[k] is None]
        parts = [unpack_sections(payloads[k], expected=6 if self._params["context"] == "none" else 7) for k in todo]
        x_hats = self.inner.decode_payloads([p[0] for p in parts], [masks[k] for k in todo])
        for k, p, x_hat in zip(todo, parts, x_hats):
            out[k] = self._decode_residual(p, masks[k], x_hat)
        return out

    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        return self.encode_payloads([x], [mask])[0]

    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        return self.decode_payloads([payload], [mask])[0]

    def _encode_residual(self, x: np.ndarray, mask: np.ndarray, inner_payload: bytes, x_hat: np.ndarray) -> bytes:
        x_hat = np.asarray(x_hat, np.float32)
        eps, step = self._steps(x.shape[0])
        if self._params["context"] == "none":
            q_block = _pointwise_q(x, x_hat, mask, step)
            x_rec64 = x_hat.astype(np.float64) + q_block * step[:, None, None]
            context = []
        else:
            filled = prediction.finite_fill(x_hat, mask)
            predictor, section = self._new_predictor(x, mask, filled, eps)
            x_rec64, q_block = prediction.run(filled, mask, predictor, step, x=x)
            context = [section]
        with np.errstate(invalid="ignore", over="ignore"):
            x_rec = x_rec64.astype(np.float32)
        misses = kernels.exceedances(np.ascontiguousarray(x), x_rec, np.ascontiguousarray(mask != 0), eps)
        patches = pack_patches(misses, x)
        if self.stream_version == 1:  # the constriction coder: re-encoding what a version-1 stream holds
            groups = ([q_block[f][mask[f] != 0] for f in range(x.shape[0])] if self._params["context"] == "none"
                      else prediction.groups(q_block, mask))
            tables, words, escaped = encode_symbols(groups)
        else:
            # q_block is 0 at invalid points (both `prediction.run` and `_pointwise_q` leave it so)
            tables, words, escaped = encode_residuals(q_block, mask, self.stream_version, zero_where_invalid=True)
        return pack_sections([inner_payload, _checksum(x_hat, mask), *context, tables, words, escaped, patches])

    def _new_predictor(self, x: np.ndarray, mask: np.ndarray, filled: np.ndarray, eps: np.ndarray):
        """(predictor, the stream section the decoder rebuilds it from)."""
        if self.context_model:
            noise = self.context_model.noise_inputs(eps, x.shape[0])
            return self.context_model.predictor(noise), zstd_int64(noise)
        coefficients = prediction.fit(x, mask, filled, eps)
        return prediction.LinearPredictor(coefficients, x.shape[0]), _zstd_bytes(coefficients.astype("<f4").tobytes())

    def _stored_predictor(self, section: bytes, n_features: int):
        """The predictor `_new_predictor` made, from its stream section."""
        if self.context_model:
            noise = unzstd_int64(section, "context noise levels").astype(np.float64)
            if noise.size != n_features:
                raise ContainerError(f"errorbound stream holds {noise.size} context noise levels for {n_features} features")
            return self.context_model.predictor(noise)
        coefficients = np.frombuffer(_unzstd_bytes(section), "<f4")
        if coefficients.size != prediction.coefficient_count(n_features):
            raise ContainerError(f"errorbound stream holds {coefficients.size} prediction coefficients, "
                                 f"a block of {n_features} features needs {prediction.coefficient_count(n_features)}")
        return prediction.LinearPredictor(coefficients, n_features)

    def _decode_residual(self, parts: list[bytes], mask: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
        checksum, *context, tables, words, escaped, patches = parts[1:]
        x_hat = np.asarray(x_hat, np.float32)
        if _checksum(x_hat, mask) != checksum:
            raise ContainerError(
                f"inner codec {self.inner.name!r} decoded differently than when this stream was encoded "
                "(non-deterministic decoder, other device or other weights); refusing to return values "
                "that may break the error bound"
            )
        _, step = self._steps(mask.shape[0])
        valid = mask != 0
        if self.stream_version != 1 and self._params["context"] == "causal":  # the one-pass decoder
            predictor = self._stored_predictor(context[0], mask.shape[0])
            x_rec = predictor.decode_stream(x_hat, residual_model(mask, tables, words, escaped, self.stream_version),
                                            step)
            return apply_patches(patches, x_rec)
        if self.stream_version != 1:
            q_block = decode_residuals(mask, tables, words, escaped, self.stream_version)
        elif self._params["context"] == "none":
            sizes = [int(valid[f].sum()) for f in range(mask.shape[0])]
            q_block = np.zeros(mask.shape, np.int64)
            for f, q in enumerate(decode_symbols(sizes, tables, words, escaped)):
                q_block[f][valid[f]] = q
        else:
            q_block = prediction.scatter(decode_symbols(prediction.group_sizes(mask), tables, words, escaped), mask)
        if self._params["context"] == "none":
            x_rec64 = x_hat.astype(np.float64) + q_block * step[:, None, None]
        else:
            predictor = self._stored_predictor(context[0], mask.shape[0])
            x_rec64, _ = prediction.run(prediction.finite_fill(x_hat, mask), mask, predictor, step, q=q_block)
        with np.errstate(invalid="ignore", over="ignore"):
            return apply_patches(patches, x_rec64.astype(np.float32))


def _pointwise_q(x: np.ndarray, x_hat: np.ndarray, mask: np.ndarray, step: np.ndarray) -> np.ndarray:
    """round((x - x_hat) / step) at valid points; 0 elsewhere and where that is not worth coding."""
    valid = mask != 0
    q_block = np.zeros(x.shape, np.int64)
    for f in range(x.shape[0]):
        residual = (x[f][valid[f]].astype(np.float64) - x_hat[f][valid[f]]) / step[f]
        q_block[f][valid[f]] = np.where(np.abs(residual) < _LIMIT, np.rint(np.nan_to_num(residual, nan=0.0)), 0.0)
    return q_block


def _zstd_bytes(data: bytes) -> bytes:
    return bytes(Zstd(level=9).encode(data))


def _unzstd_bytes(data: bytes) -> bytes:
    try:
        return bytes(Zstd().decode(data))
    except (RuntimeError, ValueError) as err:  # what numcodecs' Zstd raises on a corrupt frame
        raise ContainerError(f"errorbound prediction coefficients are corrupt: {err}") from err


def _context_model(inner: Codec, checkpoint: str | None):
    from satflow.codecs.learned.context_model import load_context_model  # torch: only for context="learned"

    return load_context_model(inner, checkpoint)


def _default_inner_params(inner: str, inner_params: dict | None, eps: float | list[float]) -> dict:
    """An inner codec that requires `tol` and got none uses tol = eps (so inner="sz3" just works)."""
    params = dict(inner_params or {})
    tol_doc = parameter_docs(codec_class(inner)).get("tol")
    if tol_doc is not None and "default" not in tol_doc and "tol" not in params:
        params["tol"] = eps
    return params
