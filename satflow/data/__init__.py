"""Files that ship with satflow.

`AMSUA_CHECKPOINT`: a small learned-codec checkpoint (VAEformerLite transform codec and the
context network of `errorbound(context="learned")`, 2.6 MB) for the 15 AMSU-A channels
`tmbrs-1` .. `tmbrs-15`. It was trained on held-out-seed AMSU-like sample data (16 files at 1°)
by `OMP_NUM_THREADS=1 python benchmarks/codecs/learned.py`, which writes it here; `satflow demo`
evaluates it against the classic codecs.
"""

from pathlib import Path

AMSUA_CHECKPOINT = Path(__file__).parent / "amsua-vaeformer"
