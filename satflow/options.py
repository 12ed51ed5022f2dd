"""The base of every configuration section: each package's `options.py` derives its models from `Section`.

Options live with the package that reads them (`runtime.options`, `sources.options`, `ingest.options`,
`index.options`, `codecs.options`, `train.options`, `eval.options`); `satflow.config` only assembles
them. Those modules import pydantic and the standard library only, so loading a config stays cheap.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: an unknown key is an error (a misspelt key must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")
