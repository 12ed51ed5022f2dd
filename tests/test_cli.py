"""The command line assembles one module per command group and starts without the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

from satflow.cli import COMMAND_MODULES, main


def test_the_parser_starts_without_torch_or_distributed():
    """Parsing (`satflow --help`, a data command) imports neither: their handlers do, when they run."""
    script = ("import sys\n"
              "from satflow.cli import build_parser\n"
              "build_parser().parse_args(['train', 'store.zarr', '--index', 'i.parquet', '--out', 'o'])\n"
              "print(sorted(m for m in ('torch', 'distributed', 'zarr', 'netCDF4') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"


def test_every_command_group_is_assembled(capsys):
    assert all(name.startswith("satflow.cli.") for name in COMMAND_MODULES)
    assert main([]) == 2  # no command: the help, listing every group's commands
    listed = capsys.readouterr().out
    for command in ("sample", "ingest", "inspect", "export", "demo", "from-meta", "index", "codecs", "encode",
                    "decode", "train", "eval", "report", "status"):
        assert f"    {command} " in listed or f"    {command}\n" in listed, command


def test_train_flags_reach_the_train_section(tmp_path, capsys):
    """A flag outside the train section's bounds is refused with the key named, before any training."""
    code = main(["train", str(tmp_path / "missing.zarr"), "--index", "x.parquet", "--out", str(tmp_path),
                 "--epochs", "0"])
    assert code == 1
    assert "invalid train flags: epochs" in capsys.readouterr().err
