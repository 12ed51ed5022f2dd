"""Whole-field metrics: merged time-step partials equal a straightforward computation over all fields."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from satflow.eval.fields import (
    ACCEPTANCE_THRESHOLDS,
    SPECTRUM_EDGES,
    WAVENUMBERS,
    FieldSums,
    acceptance,
    dssim_field,
)
from satflow.metrics import ErrorSums, merge_all


def reference_dssim(x, y, valid):
    """ldcpy's DSSIM (ssim_value_fp_fast) written point by point, as ssim_value_fp_slow loops."""
    a1 = np.where(valid, x.astype(np.float64), np.nan)
    a2 = np.where(valid & np.isfinite(y), y.astype(np.float64), np.nan)
    both = np.concatenate([a1[np.isfinite(a1)], a2[np.isfinite(a2)]])
    if both.size == 0:
        return float("nan")
    low, high = both.min(), both.max()
    if high > low:
        a1, a2 = (a1 - low) / (high - low), (a2 - low) / (high - low)
    elif high != 0:
        a1, a2 = a1 / high, a2 / high
    a1, a2 = np.round(a1 * 255) / 255, np.round(a2 * 255) / 255
    g = np.array([np.exp(-(i**2) / (2 * 1.5**2)) for i in range(-5, 6)])
    kernel = np.outer(g, g)

    def weighted_mean(window):
        finite = np.isfinite(window)
        return np.sum(kernel[finite] * window[finite]) / np.sum(kernel[finite])

    ssims = []
    for i in range(5, a1.shape[0] - 5):
        for j in range(5, a1.shape[1] - 5):
            if np.isnan(a1[i, j]) or np.isnan(a2[i, j]):
                continue
            w1, w2 = a1[i - 5 : i + 6, j - 5 : j + 6], a2[i - 5 : i + 6, j - 5 : j + 6]
            mu1, mu2 = weighted_mean(w1), weighted_mean(w2)
            var1, var2 = weighted_mean(w1 * w1) - mu1 * mu1, weighted_mean(w2 * w2) - mu2 * mu2
            cov = weighted_mean(w1 * w2) - mu1 * mu2
            c = 1e-8
            ssims.append((2 * mu1 * mu2 + c) / (mu1**2 + mu2**2 + c) * (2 * cov + c) / (var1 + var2 + c))
    return float(np.mean(ssims)) if ssims else float("nan")


def smooth_field(rng, shape, noise=0.05, gaps=0.15):
    n_lat, n_lon = shape
    lat, lon = np.meshgrid(np.linspace(0, 3, n_lat), np.linspace(0, 4, n_lon), indexing="ij")
    x = (250 + 10 * np.sin(lon) * np.cos(lat) + rng.normal(0, 0.5, shape)).astype(np.float32)
    y = (x + rng.normal(0, noise, shape)).astype(np.float32)
    valid = rng.random(shape) > gaps
    return x, y, valid


def test_dssim_equals_a_point_by_point_implementation_of_ldcpy():
    rng = np.random.default_rng(7)
    x, y, valid = smooth_field(rng, (16, 19), noise=0.8)
    valid[:4, :6] = False  # a coast
    y[3, 12] = np.nan  # a NaN reconstruction at a valid point
    expected = reference_dssim(x, y, valid)
    assert 0.5 < expected < 1.0
    assert dssim_field(x, y, valid) == pytest.approx(expected, rel=1e-12)


def test_dssim_of_identical_fields_is_exactly_one():
    rng = np.random.default_rng(8)
    x, _, valid = smooth_field(rng, (23, 31))
    assert dssim_field(x, x.copy(), valid) == 1.0
    constant = np.full((12, 12), 3.0, np.float32)
    assert dssim_field(constant, constant, np.ones((12, 12), bool)) == 1.0
    sums = FieldSums.from_fields(np.stack([x, x]), np.stack([x, x]), np.stack([valid, valid]))
    assert sums.merge(sums).finalize()["per_feature"]["dssim"] == [1.0, 1.0]


def test_dssim_is_nan_for_fields_without_interior_points():
    rng = np.random.default_rng(9)
    x, y, valid = smooth_field(rng, (10, 40))
    assert np.isnan(dssim_field(x, y, valid))  # fewer than 11 rows: ldcpy's crop leaves nothing
    x, y, valid = smooth_field(rng, (12, 12))
    valid[5:7, 5:7] = False  # every interior point invalid
    assert np.isnan(dssim_field(x, y, valid))
    assert np.isnan(dssim_field(x, y, np.zeros_like(valid)))


@st.composite
def time_steps(draw):
    """Fields of one cube at several time steps: (x, x_hat, mask) of shape (feature, lat, lon)."""
    n_features = draw(st.integers(1, 2))
    shape = (n_features, draw(st.integers(1, 16)), draw(st.integers(1, 17)))
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        x = draw(arrays(np.float32, shape, elements=st.one_of(st.floats(-50, 50, width=32),
                                                               st.sampled_from([np.nan, 0.0]))))
        error = draw(arrays(np.float32, shape, elements=st.floats(-1, 1, width=32)))
        mask = draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 1, 1])))
        if draw(st.integers(0, 4)) == 0:
            mask[:] = 0  # an all-invalid time step
        steps.append((x, (x + error).astype(np.float32), mask))
    return steps


def dft_power(field):
    """|DFT|^2 / n by explicit Fourier matrices (no np.fft), with the wavenumber of every mode."""
    n_lat, n_lon = field.shape
    rows = np.exp(-2j * np.pi * np.outer(np.arange(n_lat), np.arange(n_lat)) / n_lat)
    cols = np.exp(-2j * np.pi * np.outer(np.arange(n_lon), np.arange(n_lon)) / n_lon)
    power = np.abs(rows @ field @ cols.T) ** 2 / field.size
    signed = lambda n: np.array([i / n if i <= (n - 1) // 2 else (i - n) / n for i in range(n)])  # noqa: E731
    k = np.sqrt(signed(n_lat)[:, None] ** 2 + signed(n_lon)[None, :] ** 2)
    return power, k


def reference_spectrum(fields):
    """Summed power per wavenumber bin over all fields, and the mode count, by explicit loops."""
    total, modes = np.zeros(32), np.zeros(32, np.int64)
    for values, valid in fields:
        if not valid.any():
            continue
        anomaly = np.where(valid, values - values[valid].mean(), 0.0)
        power, k = dft_power(anomaly)
        for p, kk in zip(power.ravel(), k.ravel()):
            if 0 < kk <= 0.5:
                b = 31 if kk == 0.5 else int(np.sum(SPECTRUM_EDGES[1:] <= kk))
                total[b] += p
                modes[b] += 1
    return total, modes


def reference_lag1(steps, f):
    """Pearson r of all (e_i, e_j) with j the right or lower neighbour of i, both valid."""
    first, second = [], []
    for x, y, mask in steps:
        valid = (mask[f] != 0) & np.isfinite(x[f])
        e = np.where(valid, y[f].astype(np.float64) - x[f], 0.0)
        for a, b, both in [(e[:, :-1], e[:, 1:], valid[:, :-1] & valid[:, 1:]),
                           (e[:-1, :], e[1:, :], valid[:-1, :] & valid[1:, :])]:
            first.append(a[both])
            second.append(b[both])
    a, b = np.concatenate(first), np.concatenate(second)
    if a.size < 2 or np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return None  # undefined or ill-conditioned: not compared
    return float(np.corrcoef(a, b)[0, 1])


@settings(max_examples=80, deadline=None)
@given(steps=time_steps(), seed=st.integers(0, 2**32 - 1))
def test_merged_time_steps_equal_a_straightforward_pass_over_all_fields(steps, seed):
    rng = np.random.default_rng(seed)
    parts = [FieldSums.from_fields(x, y, m) for x, y, m in steps]
    order = rng.permutation(len(parts))
    report = merge_all([parts[i] for i in order] + [FieldSums.empty(steps[0][0].shape[0])]).finalize()
    json.dumps(report)
    per = report["per_feature"]
    assert report["wavenumber"] == pytest.approx(np.arange(32) / 64 + 1 / 128)
    for f in range(steps[0][0].shape[0]):
        dssims = [reference_dssim(x[f], y[f], (m[f] != 0) & np.isfinite(x[f])) for x, y, m in steps]
        dssims = [d for d in dssims if np.isfinite(d)]
        assert per["dssim_fields"][f] == len(dssims)
        if dssims:
            # var = G(a^2) - mu^2 against C = 1e-8: summation order changes DSSIM by up to ~eps / C
            assert per["dssim"][f] == pytest.approx(np.mean(dssims), rel=1e-12, abs=1e-7)
        else:
            assert np.isnan(per["dssim"][f])
        expected_lag1 = reference_lag1(steps, f)
        if expected_lag1 is not None:
            assert per["error_lag1_autocorr"][f] == pytest.approx(expected_lag1, rel=1e-7, abs=1e-9)
        fields_x = [(x[f].astype(np.float64), (m[f] != 0) & np.isfinite(x[f])) for x, y, m in steps]
        fields_y = [(y[f].astype(np.float64), (m[f] != 0) & np.isfinite(x[f])) for x, y, m in steps]
        power_x, modes = reference_spectrum(fields_x)
        power_y, _ = reference_spectrum(fields_y)
        scale = max(power_x.max(initial=0), power_y.max(initial=0), 1.0)
        assert np.asarray(per["power_original"][f]) * np.maximum(modes, 1) == pytest.approx(
            np.where(modes > 0, power_x, np.nan), abs=1e-9 * scale, nan_ok=True)
        ratio = np.asarray(per["spectral_ratio"][f])
        clear = power_x > 1e-6 * scale
        assert ratio[clear] == pytest.approx(power_y[clear] / power_x[clear], rel=1e-6)


def test_lag1_autocorrelation_of_known_error_patterns():
    x = np.zeros((1, 8, 8), np.float32)
    checkerboard = np.indices((8, 8)).sum(axis=0) % 2 * 2.0 - 1.0
    per = FieldSums.from_fields(x, checkerboard[None], None).finalize()["per_feature"]
    assert per["error_lag1_autocorr"] == [pytest.approx(-1.0)]
    ramp = np.add.outer(np.arange(8.0), np.arange(8.0))[None]
    assert FieldSums.from_fields(x, ramp, None).finalize()["per_feature"]["error_lag1_autocorr"][0] > 0.9
    assert np.isnan(FieldSums.from_fields(x[:, :1, :1], x[:, :1, :1], None).finalize()["per_feature"]
                    ["error_lag1_autocorr"][0])


def test_spectral_ratio_of_a_damped_wave():
    n = 64
    lon = np.arange(n)
    wave = np.broadcast_to(np.sin(2 * np.pi * 8 * lon / n), (n, n))  # 0.125 cycles per grid spacing
    report = FieldSums.from_fields(wave[None], 0.5 * wave[None], None).finalize()
    ratio = np.asarray(report["per_feature"]["spectral_ratio"][0])
    peak = int(np.nanargmax(report["per_feature"]["power_original"][0]))
    assert WAVENUMBERS[peak] == pytest.approx(0.125 + 1 / 128)
    assert ratio[peak] == pytest.approx(0.25)
    assert np.isnan(ratio[0])  # no power below the first mode of a 64-point field


def test_fields_without_valid_points_and_single_cells_give_nan():
    x = np.full((2, 1, 1), np.nan, np.float32)
    x[1] = 5.0
    per = FieldSums.from_fields(x, x, np.ones_like(x, np.uint8)).finalize()["per_feature"]
    assert np.isnan(per["dssim"]).all() and per["dssim_fields"] == [0, 0]
    assert np.isnan(per["error_lag1_autocorr"]).all()
    assert np.isnan(per["spectral_ratio"]).all()
    with pytest.raises(ValueError, match=r"\(feature, lat, lon\)"):
        FieldSums.from_fields(x[0], x[0])


def test_partials_pickle_small():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(15, 90, 120)).astype(np.float32)
    assert len(pickle.dumps(FieldSums.from_fields(x, x + 0.1))) < 16_000


def _metrics(pearson, dssim, share, rel_threshold=1e-4):
    errors = {"rel_threshold": rel_threshold, "per_feature": {"pearson_r": pearson, "rel_error_exceed_share": share}}
    return errors, {"per_feature": {"dssim": dssim}}


def test_acceptance_at_the_community_thresholds():
    errors, fields = _metrics([0.99999, 0.99998, 1.0, float("nan")], [0.995, 1.0, 0.99, 1.0], [0.05, 0.0, 0.0, 0.0])
    result = acceptance(errors, fields)
    assert result["pearson"] == [True, False, True, False]
    assert result["dssim"] == [True, True, False, True]
    assert result["rel_error"] == [True, True, True, True]
    assert result["pass"] == [True, False, False, False]
    assert result["thresholds"] == ACCEPTANCE_THRESHOLDS
    assert acceptance(*_metrics([1.0], [1.0], [0.0500001]))["rel_error"] == [False]


def test_acceptance_needs_errors_counted_at_its_relative_threshold():
    with pytest.raises(ValueError, match="rel_threshold=0.0001"):
        acceptance(*_metrics([1.0], [1.0], [0.0], rel_threshold=1e-3))
    assert acceptance(*_metrics([1.0], [1.0], [0.0], rel_threshold=1e-3), thresholds={"rel_threshold": 1e-3})["pass"] == [True]


def test_acceptance_from_real_partials():
    rng = np.random.default_rng(4)
    x, _, valid = smooth_field(rng, (30, 40))
    y = (x * np.float32(1 + 1e-6)).astype(np.float32)
    errors = ErrorSums.from_block(x[None], y[None], valid[None]).finalize(["a"])
    fields = FieldSums.from_fields(x[None], y[None], valid[None]).finalize(["a"])
    assert acceptance(errors, fields)["pass"] == [True]
    noisy = (x + rng.normal(0, 2, x.shape)).astype(np.float32)
    errors = ErrorSums.from_block(x[None], noisy[None], valid[None]).finalize(["a"])
    fields = FieldSums.from_fields(x[None], noisy[None], valid[None]).finalize(["a"])
    assert acceptance(errors, fields) | {"thresholds": None} == {
        "pearson": [False], "dssim": [False], "rel_error": [False], "pass": [False], "thresholds": None}
