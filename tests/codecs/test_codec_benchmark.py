"""benchmarks/codecs: the datasets it builds and the comparisons it draws (no codec timing here)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "codecs"
sys.path.insert(0, str(BENCH))

import benchdata  # noqa: E402
import run as codec_bench  # noqa: E402


def _pp_record(ints: np.ndarray, reals: np.ndarray, data: np.ndarray) -> bytes:
    header = ints.astype(">i4").tobytes() + reals.astype(">f4").tobytes()
    body = data.astype(">f4").tobytes()
    return b"".join(struct.pack(">i", len(b)) + b + struct.pack(">i", len(b)) for b in (header, body))


def _pp_field(level: int, hour: int, values: np.ndarray, *, lbpack: int = 0, bmdi: float = -1e30) -> bytes:
    ints = np.zeros(45, np.int64)
    ints[:5] = (2009, 11, 19, hour, 0)
    ints[17], ints[18], ints[20], ints[32], ints[41] = values.shape[0], values.shape[1], lbpack, level, 4
    reals = np.zeros(19)
    reals[6], reals[17], reals[18] = 5.0 * level, bmdi, 1.0
    return _pp_record(ints, reals, values)


def test_read_pp_levels_become_features_and_missing_data_becomes_nan(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) + 280
    b = a + 1
    b[1, 2] = -1e30
    path = tmp_path / "theta.pp"
    path.write_bytes(_pp_field(2, 10, b) + _pp_field(1, 10, a) + _pp_field(1, 11, a + 2) + _pp_field(2, 11, a + 3))
    data = benchdata.pp_levels_dataset("t", [path], stash=4, steps=5)
    assert data["x"].shape == (2, 2, 3, 4)
    assert data["features"] == ["theta-L1", "theta-L2"]
    assert data["level_heights_m"] == [5.0, 10.0]
    np.testing.assert_array_equal(data["x"][0, 0], a)
    np.testing.assert_array_equal(data["x"][1, 1], a + 3)
    assert np.isnan(data["x"][0, 1, 1, 2]) and data["mask"][0, 1, 1, 2] == 0 and data["mask"].sum() == 47


def test_read_pp_refuses_packed_fields_and_broken_records(tmp_path):
    path = tmp_path / "packed.pp"
    path.write_bytes(_pp_field(1, 10, np.zeros((2, 2), np.float32), lbpack=1))
    with pytest.raises(ValueError, match="LBPACK 1; only unpacked"):
        benchdata.read_pp(path)
    path.write_bytes(_pp_field(1, 10, np.zeros((2, 2), np.float32))[:-3])
    with pytest.raises(ValueError, match="broken Fortran record"):
        benchdata.read_pp(path)


def test_real_pp_files_of_iris_sample_data_read_as_theta_on_model_levels():
    pytest.importorskip("iris_sample_data")
    colpex = benchdata.colpex_dataset(steps=2)
    assert colpex["x"].shape == (2, 10, 83, 83) and colpex["mask"].all()
    assert 270 < np.nanmin(colpex["x"]) and np.nanmax(colpex["x"]) < 300  # potential temperature near the ground (K)
    assert colpex["level_heights_m"][0] == 5.0 and colpex["level_heights_m"][-1] == 395.0


def test_unshared_field_keeps_the_mask_and_its_channels_share_no_small_scales():
    mask = np.ones((1, 6, 90, 180), np.uint8)
    mask[0, :, 20:30] = 0
    x = benchdata.unshared_field(mask, seed=3)
    assert x.dtype == np.float32 and np.array_equal(np.isfinite(x), mask.astype(bool))
    # In the field itself: neighbour differences (the large scale cancels out) are uncorrelated across
    # channels. Small scales shared by every channel would correlate them (0.4 with 3 K of one shared field).
    differences = np.diff(np.nan_to_num(x[0]), axis=-1)[:, 30:].reshape(6, -1)  # rows past the gap
    assert np.abs(np.corrcoef(differences)[~np.eye(6, dtype=bool)]).max() < 0.2
    # the small-scale components are independent draws: their normalised cross-correlation is near 0
    rng = np.random.default_rng(0)
    fields = np.stack([benchdata.red_noise(rng, (90, 180), 2.0) for _ in range(6)]).reshape(6, -1)
    corr = np.corrcoef(fields)
    assert np.abs(corr[~np.eye(6, dtype=bool)]).max() < 0.1
    assert np.allclose(fields.std(axis=1), 1.0)


def _rows(family: str, points: list[tuple[float, float]]) -> list[dict]:
    return [{"family": family, "codec": f"{family}-{i}", "bits_per_value": b, "rmse": r, "max_abs_error": 3 * r}
            for i, (b, r) in enumerate(points)]


def test_same_rate_comparison_interpolates_the_reference_log_linearly_and_finds_where_the_learned_codec_wins():
    rows = _rows("sz3 (per feature)", [(0.1, 4.0), (0.4, 1.0), (1.6, 0.25)])
    rows += _rows("vaeformer", [(0.2, 2.0), (0.8, 1.0)])
    out = codec_bench.same_rate_comparison(rows, "vaeformer")
    first, second = out["points"]
    # log-linear between (0.1, 4) and (0.4, 1): at 0.2, exp(log 4 + (1/3) log(1/4)) = 4^(2/3)
    assert first["reference_rmse_at_same_rate"] == pytest.approx(4 ** (2 / 3))
    assert first["learned_better"] is True and second["learned_better"] is False
    assert out["compared_bpv"] == [0.2, 0.8]
    assert out["learned_below_reference_somewhere"] and out["wins_bpv"][0][0] == pytest.approx(0.2)
    # the curves cross where 1 - (r - 0.2) / 0.6 = 2 - 2 (r - 0.1) / 0.3 (in units of log 2): r = 4/15
    assert out["wins_bpv"][0][1] == pytest.approx(4 / 15, abs=0.6 / 900)


def test_ratio_vs_reference_divides_by_sz3_per_feature_at_each_bound():
    ratios = {"sz3 (per feature)": {"0.1": 10.0, "0.5": 20.0, "1.0": None},
              "errorbound(constant)": {"0.1": 15.0, "0.5": 30.0, "1.0": 45.0}}
    assert codec_bench.ratio_vs_reference(ratios)["errorbound(constant)"] == {"0.1": 1.5, "0.5": 1.5, "1.0": None}
