"""Warming errorbound's kernels once per worker (`satflow.codecs.warm`) changes no byte of any stream."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from satflow.codecs.registry import get_codec
from satflow.codecs.warm import WarmKernels, warm_kernels


def _blocks() -> list[np.ndarray]:
    """A multi-feature block (predictive stream) and a one-feature smooth one (SZ3's stream)."""
    rng = np.random.default_rng(5)
    lat, lon = np.meshgrid(np.linspace(0, 3, 30), np.linspace(0, 5, 44), indexing="ij")
    shared = np.sin(lon) * np.cos(lat)
    block = np.stack([240 + 5 * f + (10 + f) * shared for f in range(5)]) + rng.normal(0, 0.3, (5, 30, 44))
    block[:, :, 10:13] = np.nan
    smooth = (280 + 6 * np.cos(lon + lat))[None]
    return [block.astype(np.float32), smooth.astype(np.float32)]


def test_first_encode_after_warming_in_a_fresh_process_is_bit_identical(tmp_path):
    blocks = _blocks()
    expected = []
    for k, block in enumerate(blocks):
        np.save(tmp_path / f"block{k}.npy", block)
        expected.append(get_codec("errorbound", inner="constant", eps=0.5).encode(block))
    script = textwrap.dedent(
        """
        import sys, numpy as np
        from satflow.codecs.warm import warm_kernels
        from satflow.codecs.registry import get_codec
        assert warm_kernels() > 0
        for k in range(2):
            block = np.load(f"{sys.argv[1]}/block{k}.npy")
            data = get_codec("errorbound", inner="constant", eps=0.5).encode(block)
            open(f"{sys.argv[1]}/again{k}.sfc", "wb").write(data)
        """
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=300)
    for k, data in enumerate(expected):
        assert (tmp_path / f"again{k}.sfc").read_bytes() == data


def test_warming_twice_in_one_process_changes_nothing():
    block = _blocks()[0]
    before = get_codec("errorbound", inner="constant", eps=0.5).encode(block)
    assert warm_kernels() > 0
    assert get_codec("errorbound", inner="constant", eps=0.5).encode(block) == before


def test_the_worker_plugin_warms_a_worker_of_a_cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.register_plugin(WarmKernels())
        plugins = client.run(lambda dask_worker: {name: getattr(p, "seconds", None)
                                                  for name, p in dask_worker.plugins.items()})
    (seconds,) = [p[WarmKernels.name] for p in plugins.values()]
    assert seconds is not None and seconds > 0


def test_a_spec_names_the_worker_plugins_of_its_codec_and_of_the_codec_it_wraps():
    from satflow.codecs.spec import CodecSpec

    warm = {"satflow.codecs.warm:WarmKernels"}
    assert CodecSpec.parse("errorbound:inner=constant,eps=0.5").worker_plugins() == warm
    assert CodecSpec.parse("errorbound:inner=sz3,eps=0.5").worker_plugins() == warm
    assert CodecSpec.parse("sz3:tol=0.5").worker_plugins() == set()


def test_the_dask_executor_readies_workers_with_the_named_plugins_and_in_process_nothing_runs():
    from distributed import Client, LocalCluster

    from satflow.runtime.executors import DaskExecutor, InProcessExecutor

    InProcessExecutor().prepare_workers(["no.such.module:Plugin"])  # nothing to ready, nothing imported
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        DaskExecutor(client).prepare_workers(["satflow.codecs.warm:WarmKernels"])
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert [WarmKernels.name in names for names in plugins.values()] == [True]


def test_after_warming_no_block_of_any_context_or_shape_compiles_a_kernel():
    """In a fresh process, `warm_kernels()` leaves nothing for a task to compile: coding blocks of one
    and several rANS bands through the causal and the plain context adds no numba specialisation."""
    script = textwrap.dedent(
        """
        import numpy as np
        from numba.core.registry import CPUDispatcher
        from satflow.codecs import kernels
        from satflow.codecs.registry import get_codec
        from satflow.codecs.warm import warm_kernels

        def compiled():
            return {n: len(k.signatures) for n, k in vars(kernels).items() if isinstance(k, CPUDispatcher)}

        warm_kernels()
        before = compiled()
        rng = np.random.default_rng(1)
        lat, lon = np.meshgrid(np.linspace(0, 3, 96), np.linspace(0, 5, 200), indexing="ij")
        block = np.stack([250 + 3 * f + 8 * np.sin(lon + f) * np.cos(lat) for f in range(4)])
        block = (block + rng.normal(0, 0.4, block.shape)).astype(np.float32)
        block[:, 30:34] = np.nan
        for context in ("causal", "none"):
            for eps in (0.5, 0.05, [0.5, 1.0, 0.2, 0.3]):
                for part in (block, block[:1], block[:, :40, :50]):
                    codec = get_codec("errorbound", inner="constant", eps=eps if part.shape[0] == 4 else 0.5,
                                      context=context)
                    codec.decode(codec.encode(part))
        after = compiled()
        print({n: (before[n], after[n]) for n in after if after[n] != before[n]})
        """
    )
    run = subprocess.run([sys.executable, "-c", script], check=True, timeout=600, capture_output=True, text=True)
    assert run.stdout.strip() == "{}"
