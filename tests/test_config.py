import pytest

from satflow.config import ConfigError, load_config, parse_override


def test_defaults_validate():
    config = load_config()
    assert config.cluster.kind == "local"
    assert config.ingest.chunks.time == 1


def test_override_sets_nested_key():
    config = load_config(None, ["ingest.chunks.lat=128", "cluster.local.n_workers=3"])
    assert config.ingest.chunks.lat == 128
    assert config.cluster.local.n_workers == 3


def test_override_parses_yaml_lists():
    config = load_config(None, ["ingest.source.variables=[tmbrs, hmsl]"])
    assert config.ingest.source.variables == ["tmbrs", "hmsl"]


def test_unknown_key_names_file_and_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ingest:\n  chunkz:\n    lat: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).splitlines()[0] == f"{path}: invalid configuration"
    assert "ingest.chunkz: unknown key" in str(err.value)


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ingest:\n  chunks:\n    lat: many\n")
    with pytest.raises(ConfigError, match=r"ingest\.chunks\.lat: Input should be a valid integer.*got 'many'"):
        load_config(path)


def test_impossible_value_rejected():
    with pytest.raises(ConfigError, match=r"ingest\.chunks\.lat: Input should be greater than 0 \(got -1\)"):
        load_config(None, ["ingest.chunks.lat=-1"])
    for feature in (0, -2):
        with pytest.raises(ConfigError, match=r"ingest\.chunks\.feature: .*positive chunk size or -1"):
            load_config(None, [f"ingest.chunks.feature={feature}"])
    assert load_config(None, ["ingest.chunks.feature=-1"]).ingest.chunks.feature == -1
    with pytest.raises(ConfigError, match="lat_min .* must be below lat_max"):
        load_config(None, ["ingest.source.crop={lat_min: 10, lat_max: 0}"])


def test_override_without_equals_explains():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("ingest.chunks.lat")


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_every_shipped_config_validates():
    from pathlib import Path

    configs = sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))
    assert configs, "configs/ must hold worked examples"
    for path in configs:
        load_config(path)


def test_loading_a_config_imports_no_stage():
    """config.py assembles the light `options` modules only: no array, codec, cluster or model library."""
    import subprocess
    import sys

    heavy = ["numpy", "numcodecs", "dask", "distributed", "xarray", "torch", "zarr", "pyproj", "netCDF4", "pandas"]
    code = ("import sys; from satflow.config import load_config; load_config(); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_config_imports_only_options_modules():
    import ast
    import inspect

    import satflow.config

    tree = ast.parse(inspect.getsource(satflow.config))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    satflow_modules = {m for m in modules if m.startswith("satflow")}
    assert satflow_modules and all(m == "satflow.options" or m.endswith(".options") for m in satflow_modules)


def test_options_modules_import_only_pydantic_and_the_standard_library():
    """What config.py assembles stays light: each `options` module imports pydantic, the standard library
    and other options modules (and the light registry of source kinds), nothing of a stage."""
    import ast
    import sys
    from pathlib import Path

    import satflow

    package = Path(satflow.__file__).parent
    light = {"satflow.options", "satflow.sources.kinds"}
    for path in [package / "options.py", package / "sources" / "kinds.py", *package.glob("**/options.py")]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ("__future__", "pydantic") or name in light \
                    or name.endswith(".options"), f"{path.relative_to(package)} imports {name}"
