"""Range coding of integer symbols with stored integer tables (constriction's queue coder).

Every symbol is coded with the table its `table_index` names. Symbols are coded grouped by
table (ascending table index, raster order inside a group), so each group is one vectorised
`encode` call with one `Categorical` model; the decoder knows every table index before it
decodes (they come from the hyper-latent), so it can replay the same order. A value outside its
table's support is coded as the table's escape symbol and stored verbatim in a side list.
"""

from __future__ import annotations

import constriction
import numpy as np

# constriction's submodules are attributes of its Rust extension, not importable packages.
Categorical = constriction.stream.model.Categorical
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder

SYMBOL_LIMIT = 2**30  # symbols are clipped here so that escapes always fit in int32


class TableModels:
    """constriction models for a stack of integer pmf tables (the last entry of each is the escape)."""

    def __init__(self, counts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> None:
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.asarray(lengths, dtype=np.int64) - 1  # regular symbols; index `size` = escape
        # Integer counts are exact in float64, so every process builds the very same model.
        self.models = [
            Categorical(np.asarray(row[:n], dtype=np.float64), perfect=False) for row, n in zip(counts, lengths)
        ]

    def __len__(self) -> int:
        return len(self.models)


def _groups(table_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable order of positions by table, the tables present and their group boundaries."""
    order = np.argsort(table_index, kind="stable")
    present, starts = np.unique(table_index[order], return_index=True)
    bounds = np.append(starts, order.size)
    return order, present, bounds


def encode_symbols(
    encoder: RangeEncoder, values: np.ndarray, table_index: np.ndarray, models: TableModels, escapes: list
) -> None:
    """Append int64 `values` (any shape) coded with the tables named by `table_index` (same shape)."""
    values = np.clip(values.ravel(), -SYMBOL_LIMIT, SYMBOL_LIMIT).astype(np.int64)
    order, present, bounds = _groups(table_index.ravel())
    ordered = values[order]
    for table, start, stop in zip(present, bounds[:-1], bounds[1:]):
        group = ordered[start:stop] - models.offsets[table]
        size = models.sizes[table]
        outside = (group < 0) | (group >= size)
        if outside.any():
            escapes.append(ordered[start:stop][outside])
            group = np.where(outside, size, group)
        encoder.encode(group.astype(np.int32), models.models[table])


def decode_symbols(
    decoder: RangeDecoder, table_index: np.ndarray, models: TableModels, escapes: "EscapeReader"
) -> np.ndarray:
    """Inverse of `encode_symbols`: int64 values with the shape of `table_index`."""
    flat_index = table_index.ravel()
    order, present, bounds = _groups(flat_index)
    ordered = np.empty(flat_index.size, dtype=np.int64)
    for table, start, stop in zip(present, bounds[:-1], bounds[1:]):
        group = decoder.decode(models.models[table], int(stop - start)).astype(np.int64)
        size = models.sizes[table]
        outside = group == size
        group = group + models.offsets[table]
        if outside.any():
            group[outside] = escapes.take(int(outside.sum()))
        ordered[start:stop] = group
    values = np.empty_like(ordered)
    values[order] = ordered
    return values.reshape(table_index.shape)


class EscapeReader:
    """Sequential reader of the escaped values, in the order the encoder appended them."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.int64)
        self.position = 0

    def take(self, n: int) -> np.ndarray:
        if self.position + n > self.values.size:
            raise ValueError("learned payload is inconsistent: more escaped symbols than stored")
        out = self.values[self.position : self.position + n]
        self.position += n
        return out


def new_encoder() -> RangeEncoder:
    return RangeEncoder()


def finish(encoder: RangeEncoder) -> bytes:
    """The compressed words as little-endian bytes."""
    return encoder.get_compressed().astype("<u4").tobytes()


def new_decoder(data: bytes) -> RangeDecoder:
    if len(data) % 4:
        raise ValueError(f"range-coded section of {len(data)} bytes is not a whole number of 32-bit words")
    return RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
