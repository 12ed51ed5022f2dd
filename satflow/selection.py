"""Index ranges of a store dimension, as users type them (`3`, `2:5`, `:5`, `2:`).

One parser for every command that selects steps or cells (`satflow encode --time/--lat/--lon`,
`satflow eval --time`, the `eval.time` key); it imports nothing, so any stage may use it.
"""

from __future__ import annotations


def parse_index_range(text: str | None, size: int, *, name: str, unit: str) -> tuple[int, int]:
    """`"3"` -> (3, 4), `"2:5"` -> (2, 5), `":5"`, `"2:"`, `":"`, `""`, None -> everything.

    `name` starts the error messages (the flag or key, e.g. `--lat`), `unit` says what the
    dimension counts (e.g. `time steps`); a range outside 0..size is refused.
    """
    if text is None or str(text).strip() in ("", ":"):
        return 0, size
    parts = str(text).split(":")
    try:
        if len(parts) == 1:
            start = int(parts[0])
            stop = start + 1
        elif len(parts) == 2:
            start = int(parts[0]) if parts[0].strip() else 0
            stop = int(parts[1]) if parts[1].strip() else size
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{name} {text!r}: expected an index I or a range A:B of {unit}") from None
    if not 0 <= start < stop <= size:
        raise ValueError(f"{name} {text!r} is outside the store's 0..{size} {unit}")
    return start, stop
