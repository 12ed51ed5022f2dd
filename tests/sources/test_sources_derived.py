"""Derived features: safe expressions over feature names, NaN wherever an input is invalid, through ingest."""

from __future__ import annotations

import numpy as np
import pytest

from satflow.config import ConfigError, load_config
from satflow.sources.derived import DerivedFeatureError, check_inputs, evaluate, parse

FEATURES = {"tmbrs-1": np.array([250.0, np.nan, 240.0, 0.0], np.float32),
            "tmbrs-2": np.array([240.0, 230.0, np.nan, 0.0], np.float32),
            "saza": np.array([0.0, 30.0, 60.0, 90.0], np.float32)}


def test_difference_of_dashed_names_is_masked_where_an_input_is():
    np.testing.assert_array_equal(evaluate("tmbrs-1 - tmbrs-2", FEATURES.__getitem__), [10.0, np.nan, np.nan, 0.0])


def test_numbers_functions_and_undefined_arithmetic():
    got = evaluate("(tmbrs-1 - tmbrs-2) / tmbrs-2 * 100 + sqrt(abs(-4)) - 2", FEATURES.__getitem__)
    np.testing.assert_allclose(got, [10 / 240 * 100, np.nan, np.nan, np.nan], rtol=1e-6)  # 0/0 -> NaN
    assert got.dtype == np.float32
    np.testing.assert_allclose(evaluate("maximum(saza, 45) ** 2 * 1e-3", FEATURES.__getitem__),
                               [2.025, 2.025, 3.6, 8.1], rtol=1e-6)


def test_names_in_order_of_use():
    assert parse("tmbrs-2 - tmbrs-1 + tmbrs-2 * saza")[1] == ("tmbrs-2", "tmbrs-1", "saza")


@pytest.mark.parametrize("expression, message", [
    ("__import__('os').system('true')", "only the functions abs, sqrt, log, exp, minimum, maximum may be called"),
    ("saza.real", "Attribute is not allowed"),
    ("saza[0]", "Subscript is not allowed"),
    ("'text'", "only numbers are allowed as constants"),
    ("lambda: 1", "is not an arithmetic expression"),
    ("saza if saza else 1", "is not an arithmetic expression"),
    ("saza < 1", "Compare is not allowed"),
    ("sqrt(saza, x=1)", "positional arguments only"),
    ("1j + saza", "only numbers are allowed as constants, not 1j"),
    ("", "an expression must be non-empty text"),
])
def test_unsafe_or_invalid_input_is_refused(expression, message):
    with pytest.raises(DerivedFeatureError) as raised:
        parse(expression)
    assert message in str(raised.value)


def test_config_refuses_unsafe_expression_by_key():
    with pytest.raises(ConfigError) as raised:
        load_config(None, ['ingest.source.derived={bad: "open(1)"}'])
    assert "ingest.source.derived: Value error, derived feature 'bad': 'open(1)': only the functions" in str(raised.value)


def test_unknown_feature_and_clashing_name():
    with pytest.raises(DerivedFeatureError, match="uses tmbrs-9, which the input does not have"):
        check_inputs({"d": "tmbrs-1 - tmbrs-9"}, list(FEATURES))
    with pytest.raises(DerivedFeatureError, match="'saza' repeats a feature of the input"):
        check_inputs({"saza": "tmbrs-1"}, list(FEATURES))


def test_ingest_appends_derived_features(tmp_path):
    import xarray as xr

    from satflow.ingest import run_ingest
    from satflow.sources.samples import write_amsua_sample

    files = write_amsua_sample(tmp_path / "in", steps=2, resolution=10.0, seed=1)
    config = load_config(None, ['ingest.source.derived={tb_diff: "tmbrs-1 - tmbrs-2"}']).ingest
    report = run_ingest([str(p) for p in files], tmp_path / "s.zarr", config, progress=False)
    assert report.skipped == []
    ds = xr.open_zarr(tmp_path / "s.zarr")
    assert ds.feature.values[-1] == "tb_diff" and len(ds.feature) == 41
    x = ds.X.values
    expected = x[:, 0] - x[:, 1]
    np.testing.assert_allclose(x[:, -1], expected, rtol=1e-6)
    assert np.array_equal(np.isfinite(x[:, -1]), np.isfinite(x[:, 0]) & np.isfinite(x[:, 1]))
    assert np.array_equal(ds.M.values[:, -1], np.isfinite(x[:, -1]).astype(np.uint8))


def test_input_without_the_named_feature_is_skipped_with_the_reason(tmp_path):
    from satflow.ingest import IngestError, run_ingest
    from satflow.sources.samples import write_amsua_sample

    files = write_amsua_sample(tmp_path / "in", steps=1, resolution=10.0, seed=1)
    config = load_config(None, ['ingest.source.derived={d: "tmbrs-1 - nope"}']).ingest
    with pytest.raises(IngestError, match="derived feature 'd' = 'tmbrs-1 - nope' uses nope"):
        run_ingest([str(p) for p in files], tmp_path / "s.zarr", config, progress=False)
