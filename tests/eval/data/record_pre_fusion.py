"""How pre_fusion_metrics.json was made: the eval at commit 8c4108d (before field metrics moved into
the coding pass) on the gappy fixture store. Kept for the record; it ran against that commit's API."""
import json, sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, "tests/eval")
from conftest import gappy_values, FEATURES
from satflow.store import write_store_from_arrays
from satflow.eval.api import run_eval
from satflow.eval.options import EvalConfig
from satflow.index import build_index
from satflow.index.options import IndexConfig

work = Path(tempfile.mkdtemp())
values = gappy_values()
path = work / "cube.zarr"
write_store_from_arrays(path, values, times=np.datetime64("2021-03-01") + np.arange(3) * np.timedelta64(6, "h"),
    features=FEATURES, lat=np.linspace(-11.5, 11.5, 24), lon=np.linspace(0.5, 39.5, 40),
    chunks={"time": 1, "feature": -1, "lat": 8, "lon": 16}, units=["K", "K"])
index = work / "index.parquet"
build_index(path, index, IndexConfig(patch_size=8, stride=4, max_nodata_fraction=1.0))
runs = {
    "cube": EvalConfig(codecs=["sz3:tol=0.5", "bitround:keepbits=6"]),
    "cube_blocks_8x8": EvalConfig(codecs=["sz3:tol=0.5"], block={"lat": 8, "lon": 8}, batch_size=2),
    "index": EvalConfig(codecs=["sz3:tol=0.5"], index=str(index), split=None, sample=5, seed=7),
}
KEYS = ["count", "rmse", "mae", "bias", "max_abs_error", "pearson_r", "dssim", "dssim_fields", "error_lag1_autocorr",
        "spectral_ratio", "power_original", "power_reconstruction", "spectral_error", "rel_error_exceed_share", "psnr", "nrmse"]
out = {}
for name, config in runs.items():
    result = run_eval(path, work / name, config, progress=False)
    table = pd.read_parquet(work / name / "metrics.parquet")
    out[name] = {"config": config.model_dump(mode="json", exclude={"index"}), "entries": [
        {"codec": e["codec"], "n_bytes": e["n_bytes"], "histogram": e["histogram"]["counts"],
         "per_feature": {k: e["per_feature"][k] for k in KEYS}} for e in result.entries],
        "per_step": table[table["t"] >= 0][["codec", "feature", "t", "dssim", "error_lag1_autocorr", "spectral_error", "rmse"]]
            .to_dict(orient="list")}
Path("tests/eval/data/pre_fusion_metrics.json").write_text(json.dumps(out, indent=1, allow_nan=True) + "\n")
print("ok", {k: [e["per_feature"]["dssim"] for e in v["entries"]] for k, v in out.items()})
