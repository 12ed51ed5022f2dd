"""`satflow codecs`, `satflow encode`, `satflow decode` end to end on a real (tiny) store."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from satflow.cli import main
from satflow.codecs.container import split_containers, unpack_container


def test_codecs_lists_parameters(capsys):
    assert main(["codecs"]) == 0
    text = capsys.readouterr().out
    assert "sz3: SZ3 (pysz) with an absolute error bound" in text
    assert "    tol (required): absolute error bound in data units" in text
    assert main(["codecs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["zfp"]["params"]["fill"]["default"] == "smooth"


def test_encode_then_decode_npz_and_netcdf(tiny_store, tmp_path, capsys):
    path, values = tiny_store
    sfc = tmp_path / "steps.sfc"
    assert main(["encode", str(path), "--codec", "sz3", "--param", "tol=0.5", "--time", "1:3",
                 "--lat", "2:18", "--out", str(sfc)]) == 0
    out = capsys.readouterr().out
    assert "sz3(fill='smooth', tol=0.5): 2 block(s) (3, 16, 30)" in out and "bits/value" in out
    containers = split_containers(sfc.read_bytes())
    assert [unpack_container(c).attrs["time_index"] for c in containers] == [1, 2]

    assert main(["decode", str(sfc), "--out", str(tmp_path / "steps.npz")]) == 0
    decoded = np.load(tmp_path / "steps.npz")
    original = values[1:3, :, 2:18]
    assert decoded["X"].shape == (2, 3, 16, 30)
    assert np.array_equal(decoded["M"], np.isfinite(original).astype(np.uint8))
    assert np.nanmax(np.abs(decoded["X"].astype(np.float64) - original)) <= 0.5
    assert decoded["lat"].tolist() == np.linspace(-9.5, 9.5, 20)[2:18].tolist()

    assert main(["decode", str(sfc), "--out", str(tmp_path / "steps.nc")]) == 0
    with xr.open_dataset(tmp_path / "steps.nc") as ds:
        assert ds["feature"].values.tolist() == ["a-1", "a-2", "b"]
        assert str(ds["time"].values[0])[:19] == "2020-01-01T06:00:00"
        np.testing.assert_array_equal(ds["X"].values, decoded["X"])


def test_codec_from_config_and_feature_selection(tiny_store, tmp_path, capsys):
    path, values = tiny_store
    sfc = tmp_path / "b.sfc"
    assert main(["encode", str(path), "--set", "codec.name=lossless", "--feature", "b", "--out", str(sfc)]) == 0
    assert "lossless(level=5): 1 block(s) (1, 20, 30)" in capsys.readouterr().out
    assert main(["decode", str(sfc), "--out", str(tmp_path / "b.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "b.npz")["X"][0, 0], values[0, 2], equal_nan=True)


def test_corrupted_file_and_bad_flags_give_clear_errors(tiny_store, tmp_path, capsys):
    path, _ = tiny_store
    sfc = tmp_path / "x.sfc"
    assert main(["encode", str(path), "--codec", "zfp", "--param", "tol=1", "--out", str(sfc)]) == 0
    data = bytearray(sfc.read_bytes())
    data[-10] ^= 0xFF
    sfc.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["decode", str(sfc), "--out", str(tmp_path / "x.npz")]) == 1
    assert "satflow decode: error: corrupted container: CRC-32" in capsys.readouterr().err
    assert main(["encode", str(path), "--codec", "sz3", "--out", str(sfc)]) == 1
    assert "codec 'sz3' needs parameter 'tol'" in capsys.readouterr().err
    assert main(["encode", str(path), "--codec", "lossless", "--feature", "c", "--out", str(sfc)]) == 1
    assert "no feature c; the store has a-1, a-2, b" in capsys.readouterr().err


def test_printed_errors_and_bits_equal_numpy_on_the_decoded_file(tiny_store, tmp_path, capsys):
    import re

    path, values = tiny_store
    sfc, npz = tmp_path / "all.sfc", tmp_path / "all.npz"
    assert main(["encode", str(path), "--codec", "sz3", "--param", "tol=0.5", "--time", "0:4", "--out", str(sfc)]) == 0
    out = capsys.readouterr().out
    assert "4 block(s) (3, 20, 30)" in out
    assert main(["decode", str(sfc), "--out", str(npz)]) == 0
    decoded = np.load(npz)["X"].astype(np.float64)
    valid = np.isfinite(values)
    error = np.where(valid, decoded - values, np.nan)  # NaN where the store holds no value
    printed = dict(re.findall(r"^  (\S+): (rmse \S+, max abs error \S+)$", out, flags=re.M))
    expected = {}
    for k, name in enumerate(["a-1", "a-2", "b"]):
        e = error[:, k][valid[:, k]]
        expected[name] = f"rmse {np.sqrt(np.mean(e**2)):.4g}, max abs error {np.max(np.abs(e)):.4g}"
    assert printed == expected
    assert 0.1 < np.nanmax(np.abs(error)) <= 0.5  # lossy: a skipped decode would print zeros
    bits = 8.0 * sfc.stat().st_size
    assert (f"bits/value {bits / values.size:.3f} (valid cells: {bits / valid.sum():.3f}), "
            f"ratio vs float32 {32 * values.size / bits:.2f}") in out


def test_encode_ranges_are_checked_by_the_shared_parser(tiny_store, tmp_path, capsys):
    """`--time/--lat/--lon` go through satflow.selection.parse_index_range, as `eval --time` does."""
    path, _ = tiny_store
    sfc = tmp_path / "x.sfc"
    assert main(["encode", str(path), "--codec", "lossless", "--lat", "0:99", "--out", str(sfc)]) == 1
    assert "satflow encode: error: --lat '0:99' is outside the store's 0..20 lat cells" in capsys.readouterr().err
    assert main(["encode", str(path), "--codec", "lossless", "--time", "1:x", "--out", str(sfc)]) == 1
    assert "--time '1:x': expected an index I or a range A:B of time steps" in capsys.readouterr().err
    assert main(["encode", str(path), "--codec", "lossless", "--time", "2:", "--lon", ":10", "--out", str(sfc)]) == 0
    assert "lossless(level=5): 2 block(s) (3, 20, 10)" in capsys.readouterr().out
