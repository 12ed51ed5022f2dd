"""`plan_compress` is pure: chunks and regions from plain facts, no file and no cluster."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from satflow.compress.options import CompressConfig
from satflow.compress.plan import CompressError, CompressFacts, OutputFacts, Region, plan_compress

FACTS = CompressFacts(store="/data/s.zarr", fingerprint="abc", shape=(5, 3, 30, 60), chunks=(2, 3, 16, 32),
                      features=("a", "b", "c"), out="/data/c.zarr")


def test_a_new_plan_takes_the_input_chunks_and_one_region_per_time_chunk():
    plan = plan_compress(FACTS, CompressConfig(codec="sz3:tol=0.5"))
    assert plan.chunks == (2, 3, 16, 32) and plan.mode == "create" and plan.done == ()
    assert plan.pending == (Region(0, 2), Region(2, 4), Region(4, 5))
    assert plan.codec == "sz3:tol=0.5"


def test_chunks_set_by_dimension_are_clipped_to_the_shape():
    plan = plan_compress(FACTS, CompressConfig(codec="sz3:tol=0.5", chunks={"time": 1, "lat": 100, "feature": 1}))
    assert plan.chunks == (1, 1, 30, 32) and len(plan.pending) == 5


def test_a_resumed_plan_codes_only_the_unfinished_time_chunks():
    existing = OutputFacts({"codec": "sz3:tol=0.5", "source_fingerprint": "abc"}, (2, 3, 16, 32),
                           np.array([1, 1, 1, 0, 1], np.uint8))
    plan = plan_compress(replace(FACTS, existing=existing), CompressConfig(codec="sz3:tol=0.5"))
    # step 3 is pending, so its whole time chunk [2, 4) is coded again; [0, 2) and [4, 5) are only measured
    assert plan.mode == "resume" and plan.done == (Region(0, 2), Region(4, 5)) and plan.pending == (Region(2, 4),)


def test_an_output_of_another_source_is_refused():
    existing = OutputFacts({"codec": "sz3:tol=0.5", "source_fingerprint": "old"}, (2, 3, 16, 32), np.ones(5, np.uint8))
    with pytest.raises(CompressError, match=r"/data/c.zarr: exists and holds another compression \(source store "
                                            r"fingerprint old there, abc now\); pass --overwrite"):
        plan_compress(replace(FACTS, existing=existing), CompressConfig(codec="sz3:tol=0.5"))
