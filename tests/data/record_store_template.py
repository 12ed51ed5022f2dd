"""Record the store template of every layout in tests/test_store_template.py (run from the repository root):

    python tests/data/record_store_template.py
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_store_template import LAYOUTS, RECORDED, describe, write  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    recorded = {name: describe(write(name, Path(tmp))) for name in LAYOUTS}
RECORDED.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
print(f"recorded {len(recorded)} layouts in {RECORDED}")
