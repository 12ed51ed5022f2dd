"""Config section `ingest:` (owned by satflow.ingest): the inputs, their source, auxiliary products and the
store's chunks and compression. The source options themselves live in `satflow.sources.options`."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator, model_validator

from satflow.options import Section
from satflow.sources.options import AuxProductConfig, SourceConfig

_AUX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ChunkConfig(Section):
    time: int = Field(1, gt=0)
    feature: int = Field(-1, description="-1 keeps all features in one chunk")
    # A whole 0.5-degree field (361 x 720) in one chunk: measured, X and M write 28% faster than in six
    # 256 x 256 pieces at 1% fewer bytes; a 0.25-degree field is four 44 MB chunks, not one of 166 MB
    # that every patch read would decompress (benchmarks/ingest, issue 20).
    lat: int = Field(384, gt=0)
    lon: int = Field(720, gt=0)

    @field_validator("feature")
    @classmethod
    def _feature(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("must be a positive chunk size or -1 (all features)")
        return value


class IngestConfig(Section):
    inputs: list[str] = Field(default_factory=list, description="paths or globs")
    source: SourceConfig = Field(default_factory=SourceConfig)
    aux_products: dict[str, AuxProductConfig] = Field(
        default_factory=dict, description="auxiliary products co-located with the primary data: "
        "{name: {inputs, source, scene_mapping_strategy, dt_aux}}; their features are stored as <name>/<feature>")
    chunks: ChunkConfig = Field(default_factory=ChunkConfig)
    compression_level: int = Field(1, ge=0, le=9, description="Blosc zstd level; 1 measured fastest at the same size (benchmarks/ingest)")
    codec: str | dict | None = Field(None, description="codec spec for X (e.g. sz3:tol=0.5): X is written through that "
                                     "satflow codec, as `satflow compress` writes it; statistics stay those of the "
                                     "original values. null = lossless (Blosc at compression_level)")
    strict: bool = Field(False, description="exit non-zero when any input was skipped")

    @model_validator(mode="before")
    @classmethod
    def _aux_on_primary_domain(cls, data):
        """On a primary domain, an auxiliary product is regridded onto that same domain: fill it in."""
        if not isinstance(data, dict) or not isinstance(data.get("aux_products"), dict):
            return data
        primary = data.get("source")
        primary = primary.model_dump() if isinstance(primary, BaseModel) else primary or {}
        if primary.get("kind") != "regrid" or not primary.get("domain"):
            return data
        products = {}
        for name, product in data["aux_products"].items():
            if isinstance(product, dict):
                source = product.get("source")
                source = dict(source.model_dump() if isinstance(source, BaseModel) else source or {})
                source.setdefault("kind", "regrid")
                if source["kind"] == "regrid" and not source.get("domain"):
                    source["domain"] = primary["domain"]
                product = {**product, "source": source}
            products[name] = product
        return {**data, "aux_products": products}

    @model_validator(mode="after")
    def _aux_products(self) -> IngestConfig:
        primary_domain = self.source.domain if self.source.kind == "regrid" else None
        for name, product in self.aux_products.items():
            where = f"aux_products.{name}"
            if not _AUX_NAME.fullmatch(name):
                raise ValueError(f"{where}: the name must be letters, digits and '_' (not starting with a digit): "
                                 "it prefixes the product's feature names (<name>/<feature>)")
            kind = product.source.kind
            if primary_domain is not None and (kind != "regrid" or product.source.domain != primary_domain):
                raise ValueError(f"{where}.source: the primary store is on a local domain, so the auxiliary product "
                                 "is regridded onto that domain: use kind regrid and leave source.domain unset "
                                 "(it defaults to the primary's)")
            if primary_domain is None and kind == "regrid":
                raise ValueError(f"{where}.source: kind regrid targets a local domain, but the primary store is on "
                                 "a lat/lon grid: use kind gridded (resampled onto the primary grid) or swath")
        return self
