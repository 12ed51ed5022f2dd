"""satflow codecs as Zarr v3 serializers: round trips through zarr and xarray, zarr.json, fresh readers, errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import dask.array
import numpy as np
import pytest
import xarray as xr
import zarr

import satflow
from satflow.codecs import ContainerError, get_codec
from satflow.codecs.spec import CodecSpec
from satflow.codecs.zarr import BUILTIN_CODECS, SatflowZarrCodec, zarr_codec, zarr_encoding
from satflow.data import AMSUA_CHECKPOINT

ROOT = Path(__file__).resolve().parents[2]
CLASSIC_SPECS = ["lossless", "constant", "bitround:keepbits=9", "sz3:tol=0.5", "zfp:tol=0.5",
                 "errorbound:inner=constant,eps=0.5"]
VAEFORMER_SPEC = f"vaeformer:checkpoint={AMSUA_CHECKPOINT}"
LEARNED_SPECS = [VAEFORMER_SPEC, f"errorbound:inner=constant,eps=0.5,context=learned,checkpoint={AMSUA_CHECKPOINT}",
                 f"errorbound:inner=vaeformer,inner_params={{checkpoint: {AMSUA_CHECKPOINT}}},eps=0.5"]
DIMS = ("time", "feature", "lat", "lon")


@pytest.fixture
def cube(make_block) -> np.ndarray:
    """(time 3, feature 3, lat 12, lon 20) float32 with a swath gap and scattered NaN."""
    return np.stack([make_block(seed, (3, 12, 20)) for seed in (1, 2, 3)])


@pytest.fixture
def amsu_cube(make_block) -> np.ndarray:
    """(time 2, feature 15, lat 16, lon 24): the shipped checkpoint's 15 channels."""
    return np.stack([make_block(seed, (15, 16, 24)) for seed in (4, 5)])


def expected_chunk(spec: str, block: np.ndarray) -> tuple[bytes, np.ndarray]:
    """What one chunk must hold and read back as: the codec's own containers and decode."""
    parsed = CodecSpec.parse(spec)
    codec = get_codec(parsed.name, **parsed.params)  # a codec of its own, not the serializer's cached one
    containers = codec.encode_batch(list(block), [np.isfinite(step) for step in block])
    return b"".join(containers), np.stack([codec.decode(data)[0] for data in containers])


def write_array(path: Path, spec: str, cube: np.ndarray, chunks: tuple[int, ...]) -> zarr.Array:
    array = zarr.create_array(path, shape=cube.shape, chunks=chunks, dtype="float32", fill_value=np.nan,
                              serializer=zarr_codec(spec), compressors=None)
    array[:] = cube
    return array


def chunk_blocks(cube: np.ndarray, chunks: tuple[int, ...]):
    """(chunk key under c/, the chunk's block padded with NaN to the chunk shape) for every chunk."""
    for index in np.ndindex(*(-(-n // c) for n, c in zip(cube.shape, chunks))):
        block = np.full(chunks, np.nan, np.float32)
        region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, cube.shape))
        block[tuple(slice(0, r.stop - r.start) for r in region)] = cube[region]
        yield "/".join(map(str, index)), block, region


# --- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", CLASSIC_SPECS)
def test_zarr_round_trip_is_the_codecs_own_decode_and_chunks_are_its_containers(tmp_path, cube, spec):
    chunks = (2, 3, 12, 8)  # two time steps per chunk, a partial last chunk in time and lon
    write_array(tmp_path / "x.zarr", spec, cube, chunks)
    values = zarr.open_array(tmp_path / "x.zarr")[:]
    for key, block, region in chunk_blocks(cube, chunks):
        containers, decoded = expected_chunk(spec, block)
        # chunk file = the containers back to back: 0 framing bytes
        assert (tmp_path / "x.zarr" / "c" / key).read_bytes() == containers
        crop = tuple(slice(0, r.stop - r.start) for r in region)
        np.testing.assert_array_equal(values[region], decoded[crop])  # bit for bit, NaN at the same places
    assert np.array_equal(np.isnan(values), ~np.isfinite(cube))


@pytest.mark.parametrize("inline_bytes", [0, 1 << 30], ids=["worker-thread", "event-loop"])
def test_a_read_decodes_its_chunks_bit_for_bit_in_order_on_either_path(tmp_path, monkeypatch, cube, inline_bytes):
    """A read's chunks are decoded in one batch (in a worker thread, or on zarr's loop when small): every
    chunk lands where it belongs, bit for bit, and chunks never written stay NaN (zarr's fill)."""
    import satflow.codecs.zarr as satflow_zarr

    monkeypatch.setattr(satflow_zarr, "INLINE_DECODE_BYTES", inline_bytes)
    chunks = (1, 3, 5, 8)  # 3 x 1 x 3 x 3 chunks, partial in lat and lon
    write_array(tmp_path / "x.zarr", "sz3:tol=0.5", cube, chunks)
    (tmp_path / "x.zarr" / "c" / "1/0/2/1").unlink()  # a missing chunk: zarr passes None for it
    expected = np.full(cube.shape, np.nan, np.float32)
    for key, block, region in chunk_blocks(cube, chunks):
        if key != "1/0/2/1":
            expected[region] = expected_chunk("sz3:tol=0.5", block)[1][tuple(slice(0, r.stop - r.start) for r in region)]
    array = zarr.open_array(tmp_path / "x.zarr", mode="r")
    np.testing.assert_array_equal(array[:], expected)  # 27 batches of one chunk (zarr's default), one None
    with zarr.config.set({"codec_pipeline.batch_size": 64}):  # read when the array is opened
        batched = zarr.open_array(tmp_path / "x.zarr", mode="r")
    np.testing.assert_array_equal(batched[:], expected)  # one batch of 26 chunks and a None
    np.testing.assert_array_equal(array[1, :, 3:12, 5:17], expected[1, :, 3:12, 5:17])  # chunk-unaligned
    np.testing.assert_array_equal(dask.array.from_zarr(array).compute(), expected)  # one chunk a task
    assert np.array_equal(np.isnan(expected[0]), ~np.isfinite(cube[0]))  # masks restored


def test_the_batch_decode_keeps_missing_chunks_and_order(cube):
    import asyncio

    from zarr.core.array_spec import ArrayConfig, ArraySpec
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.dtype import Float32

    serializer = zarr_codec("sz3:tol=0.5")
    spec = ArraySpec(shape=(1, 3, 12, 20), dtype=Float32(), fill_value=np.float32(np.nan),
                     config=ArrayConfig(order="C", write_empty_chunks=False), prototype=default_buffer_prototype())
    chunk = [default_buffer_prototype().buffer.from_bytes(serializer.encode_chunk(cube[t : t + 1])) for t in range(3)]
    decoded = asyncio.run(serializer.decode([(chunk[2], spec), (None, spec), (chunk[0], spec)]))
    assert decoded[1] is None
    for got, t in ((decoded[0], 2), (decoded[2], 0)):
        np.testing.assert_array_equal(got.as_numpy_array(), expected_chunk("sz3:tol=0.5", cube[t : t + 1])[1])
    single = asyncio.run(serializer._decode_single(chunk[1], spec))
    np.testing.assert_array_equal(single.as_numpy_array(), expected_chunk("sz3:tol=0.5", cube[1:2])[1])


@pytest.mark.parametrize("spec", LEARNED_SPECS)
def test_a_learned_store_decodes_like_the_codec_with_the_shipped_checkpoint(tmp_path, amsu_cube, spec):
    write_array(tmp_path / "v.zarr", spec, amsu_cube, (1, 15, 16, 24))
    values = zarr.open_array(tmp_path / "v.zarr")[:]
    for t in range(2):
        containers, decoded = expected_chunk(spec, amsu_cube[t : t + 1])
        assert (tmp_path / "v.zarr" / "c" / f"{t}/0/0/0").read_bytes() == containers
        np.testing.assert_array_equal(values[t : t + 1], decoded)
    assert np.array_equal(np.isnan(values), ~np.isfinite(amsu_cube))


def test_a_feature_lat_lon_array_is_one_container_per_chunk(tmp_path, cube):
    write_array(tmp_path / "x.zarr", "sz3:tol=0.5", cube[0], (3, 12, 20))
    containers, decoded = expected_chunk("sz3:tol=0.5", cube[:1])
    assert (tmp_path / "x.zarr" / "c" / "0/0/0").read_bytes() == containers
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "x.zarr")[:], decoded[0])


@pytest.mark.parametrize("spec", ["sz3:tol=0.5", "errorbound:inner=constant,eps=0.5"])
def test_xarray_writes_through_the_serializer_and_reads_lazily(tmp_path, cube, spec):
    dataset = xr.Dataset({"X": (DIMS, cube)}).chunk({"time": 1})
    dataset.to_zarr(tmp_path / "a.zarr", encoding={"X": {"serializer": satflow.zarr_codec(spec)}}, zarr_format=3)
    dataset.to_zarr(tmp_path / "b.zarr", encoding={"X": zarr_encoding(spec)}, zarr_format=3)
    expected = np.concatenate([expected_chunk(spec, cube[t : t + 1])[1] for t in range(3)])
    for store in ("a.zarr", "b.zarr"):
        opened = xr.open_zarr(tmp_path / store)
        assert isinstance(opened.X.data, dask.array.Array)
        assert opened.X.data.chunks == ((1, 1, 1), (3,), (12,), (20,))
        np.testing.assert_array_equal(opened.X.values, expected)
    # zarr_encoding leaves out zarr's default zstd, so its chunk files are the containers alone
    codecs = json.loads((tmp_path / "b.zarr" / "X" / "zarr.json").read_text())["codecs"]
    assert [codec["name"] for codec in codecs] == [f"satflow.{spec.partition(':')[0]}"]
    assert (tmp_path / "b.zarr" / "X" / "c" / "1/0/0/0").read_bytes() == expected_chunk(spec, cube[1:2])[0]


# --- configuration -------------------------------------------------------------------------------
def test_every_registered_codec_has_a_zarr_entry_point():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["zarr.codecs"]
    # asked in a fresh process: tests here register codecs of their own (test-scaled)
    code = "from satflow.codecs.registry import available_codecs; print(' '.join(sorted(available_codecs())))"
    registered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert registered.split() == list(BUILTIN_CODECS)
    assert declared == {f"satflow.{name}": "satflow.codecs.zarr:SatflowZarrCodec" for name in BUILTIN_CODECS}


@pytest.mark.parametrize("spec, configuration", [
    ("lossless", {"level": 5}),
    ("constant", {}),
    ("bitround:keepbits=9", {"information": 0.99, "keepbits": 9, "level": 5}),
    ("sz3:tol=0.5", {"fill": "smooth", "tol": 0.5}),
    ("zfp:tol=[0.5,1]", {"fill": "smooth", "tol": [0.5, 1.0]}),
    ("errorbound:inner=constant,eps=0.5", {"context": "causal", "eps": 0.5, "inner": "constant", "inner_params": {}}),
    (LEARNED_SPECS[1], {"checkpoint": str(AMSUA_CHECKPOINT), "checkpoint_fingerprint": "9ccb53e8adb0e36c",
                        "context": "learned", "eps": 0.5, "inner": "constant", "inner_params": {}}),
    (VAEFORMER_SPEC, {"batch_size": 16, "checkpoint": str(AMSUA_CHECKPOINT), "checkpoint_fingerprint": "9ccb53e8adb0e36c",
                      "device": "cpu", "qstep": 1.0}),
])
def test_the_configuration_round_trips_through_zarr_json(tmp_path, spec, configuration):
    serializer = zarr_codec(spec)
    zarr.create_array(tmp_path / "x.zarr", shape=(1, 15, 4, 4), dtype="float32", serializer=serializer, compressors=None)
    stored = json.loads((tmp_path / "x.zarr" / "zarr.json").read_text())["codecs"]
    assert stored == [{"name": f"satflow.{spec.partition(':')[0]}", "configuration": configuration}]
    assert SatflowZarrCodec.from_dict(stored[0]) == serializer
    assert zarr.open_array(tmp_path / "x.zarr").serializer == serializer


def test_a_serializer_pickles_as_its_configuration_for_dask_workers():
    serializer = zarr_codec("errorbound:inner=sz3,eps=[0.5,1.0]")
    data = pickle.dumps(serializer)
    assert pickle.loads(data) == serializer and hash(pickle.loads(data)) == hash(serializer)
    assert len(data) < 400  # the name and JSON, not the built codec


def test_a_learned_store_refuses_other_weights_and_finds_the_shipped_ones(tmp_path, amsu_cube):
    write_array(tmp_path / "v.zarr", VAEFORMER_SPEC, amsu_cube, (1, 15, 16, 24))
    expected = zarr.open_array(tmp_path / "v.zarr")[:]
    edit_configuration(tmp_path / "v.zarr", checkpoint=str(tmp_path / "moved"))  # not there: the shipped one has it
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "v.zarr")[:], expected)
    edit_configuration(tmp_path / "v.zarr", checkpoint_fingerprint="0123456789abcdef")
    with pytest.raises(ValueError, match=r"satflow.vaeformer: no checkpoint with weights fingerprint 0123456789abcdef: "
                                         r".*moved: .*; .*amsua-vaeformer has fingerprint 9ccb53e8adb0e36c"):
        zarr.open_array(tmp_path / "v.zarr")


def edit_configuration(store: Path, **changes) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["codecs"][0]["configuration"].update(changes)
    (store / "zarr.json").write_text(json.dumps(meta))


# --- a fresh reader --------------------------------------------------------------------------------
def test_a_fresh_process_reads_the_store_without_importing_satflow(tmp_path, cube):
    if "satflow.sz3" not in {entry.name for entry in entry_points(group="zarr.codecs")}:
        pytest.skip("the installed satflow has no zarr.codecs entry points: reinstall it (pip install -e .)")
    dataset = xr.Dataset({"X": (DIMS, cube)}).chunk({"time": 2})
    dataset.to_zarr(tmp_path / "s.zarr", encoding={"X": zarr_encoding("errorbound:inner=sz3,eps=0.5")}, zarr_format=3)
    reader = textwrap.dedent(f"""
        import sys, numpy, xarray, zarr
        store = {str(tmp_path / "s.zarr")!r}
        numpy.save({str(tmp_path / "zarr.npy")!r}, zarr.open_group(store)["X"][:])
        opened = xarray.open_zarr(store)
        assert type(opened.X.data).__module__.startswith("dask"), type(opened.X.data)
        numpy.save({str(tmp_path / "xarray.npy")!r}, opened.X.values)
        print(sorted(name for name in sys.modules if name.split(".")[0] == "satflow"))
    """)
    assert "import satflow" not in reader and "from satflow" not in reader
    result = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'satflow.codecs.zarr'" in result.stdout  # zarr loaded it through the entry point
    expected = xr.open_zarr(tmp_path / "s.zarr").X.values
    np.testing.assert_array_equal(np.load(tmp_path / "zarr.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "xarray.npy"), expected)


# --- errors: never wrong numbers ---------------------------------------------------------------------
@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:40] + bytes([data[40] ^ 0xFF]) + data[41:], "corrupted container: CRC-32"),
    (lambda data: data[:-10], "truncated container"),
    (lambda data: data + data[:30], "truncated container at byte"),
])
def test_a_damaged_chunk_raises_container_error(tmp_path, cube, damage, message):
    write_array(tmp_path / "x.zarr", "sz3:tol=0.5", cube, (3, 3, 12, 20))
    chunk = tmp_path / "x.zarr" / "c" / "0/0/0/0"
    chunk.write_bytes(damage(chunk.read_bytes()))
    with pytest.raises(ContainerError, match=message):
        zarr.open_array(tmp_path / "x.zarr")[:]


def test_a_chunk_of_the_wrong_number_of_steps_or_shape_raises_container_error(tmp_path, cube):
    write_array(tmp_path / "x.zarr", "sz3:tol=0.5", cube, (3, 3, 12, 20))
    chunk = tmp_path / "x.zarr" / "c" / "0/0/0/0"
    codec = zarr_codec("sz3:tol=0.5").satflow_codec
    chunk.write_bytes(codec.encode(cube[0]))
    with pytest.raises(ContainerError, match=r"satflow.sz3: chunk holds 1 containers, its shape \(3, 3, 12, 20\) needs 3"):
        zarr.open_array(tmp_path / "x.zarr")[:]
    chunk.write_bytes(b"".join(codec.encode(step[:2]) for step in cube))
    with pytest.raises(ContainerError, match=r"satflow.sz3: a container holds a block of shape \(2, 12, 20\), "
                                             r"the chunk's time step is \(3, 12, 20\)"):
        zarr.open_array(tmp_path / "x.zarr")[:]
    chunk.write_bytes(b"".join(codec.encode(np.pad(step, ((0, 0), (0, 1), (0, 0)))) for step in cube))
    with pytest.raises(ContainerError, match=r"a container holds a block of shape \(3, 13, 20\)"):
        zarr.open_array(tmp_path / "x.zarr")[:]


def test_a_container_of_an_edge_chunk_s_in_bounds_cells_decodes_as_that_chunk(tmp_path, cube):
    """What `satflow eval` writes (`write_chunk_bytes`): the edge chunk's container holds only its in-bounds
    cells; zarr's padding beyond the array is NaN, and the array reads back bit for bit."""
    from satflow.codecs.zarr import read_chunk_bytes, write_chunk_bytes

    array = zarr.create_array(tmp_path / "x.zarr", shape=cube.shape, chunks=(1, 3, 8, 16), dtype="float32",
                              serializer=zarr_codec("sz3:tol=0.5"), compressors=None, fill_value=np.nan)
    codec = zarr_codec("sz3:tol=0.5").satflow_codec
    expected = np.full(cube.shape, np.nan, np.float32)
    for t in range(cube.shape[0]):
        for iy, y0 in enumerate(range(0, cube.shape[2], 8)):
            for ix, x0 in enumerate(range(0, cube.shape[3], 16)):
                block = cube[t, :, y0:y0 + 8, x0:x0 + 16]
                data = codec.encode(block, np.isfinite(block))
                write_chunk_bytes(array, (t, 0, iy, ix), data)
                assert read_chunk_bytes(array, (t, 0, iy, ix)) == data
                expected[t, :, y0:y0 + 8, x0:x0 + 16] = codec.decode(data)[0]
    assert read_chunk_bytes(array, (9, 0, 0, 0)) is None
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "x.zarr", mode="r")[:], expected)


def test_chunks_written_with_other_parameters_raise_container_error(tmp_path, cube):
    write_array(tmp_path / "x.zarr", "sz3:tol=0.5", cube, (3, 3, 12, 20))
    edit_configuration(tmp_path / "x.zarr", tol=1.0)
    with pytest.raises(ContainerError, match=r"container parameters .*'tol': 0.5.* differ from this 'sz3' codec's"):
        zarr.open_array(tmp_path / "x.zarr")[:]


def test_a_bad_configuration_names_the_parameter(tmp_path):
    with pytest.raises(ValueError, match=r"zarr codec satflow.sz3 \(spec 'sz3:speed=3,tol=0.5'\): codec 'sz3' has no "
                                         r"parameter 'speed'; its parameters: tol, fill"):
        zarr_codec("sz3:tol=0.5,speed=3")
    with pytest.raises(ValueError, match=r"zarr codec satflow.sz3: codec 'sz3' needs parameter 'tol'"):
        SatflowZarrCodec.from_dict({"name": "satflow.sz3", "configuration": {}})
    with pytest.raises(ValueError, match=r"zarr codec satflow.nope: unknown codec 'nope'"):
        SatflowZarrCodec.from_dict({"name": "satflow.nope"})
    zarr.create_array(tmp_path / "x.zarr", shape=(3, 4, 4), dtype="float32", serializer=zarr_codec("sz3:tol=0.5"))
    edit_configuration(tmp_path / "x.zarr", speed=3)
    with pytest.raises(ValueError, match=r"zarr codec satflow.sz3: codec 'sz3' has no parameter 'speed'"):
        zarr.open_array(tmp_path / "x.zarr")


@pytest.mark.parametrize("dtype, shape, message", [
    ("float64", (2, 3, 4, 4), r"zarr codec satflow.sz3 codes float32 arrays, not float64; cast with"),
    ("float32", (4, 4), r"zarr codec satflow.sz3 codes \(time, feature, lat, lon\) or \(feature, lat, lon\) arrays; "
                        r"got 2 dimensions"),
])
def test_an_array_the_codecs_cannot_code_is_refused_when_created(tmp_path, dtype, shape, message):
    with pytest.raises(ValueError, match=message):
        zarr.create_array(tmp_path / "x.zarr", shape=shape, dtype=dtype, serializer=zarr_codec("sz3:tol=0.5"))
