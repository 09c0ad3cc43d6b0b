"""How every command prints its result: one JSON line with --json, else indented JSON."""
from __future__ import annotations

import json
import sys


def print_value(value, as_json: bool) -> None:
    # dumps, not dump: json.dump streams through the pure-Python encoder, which took a quarter of
    # a 200-column replay printing its covariance matrices; dumps encodes in C in one go
    if as_json:
        text = json.dumps(value, indent=None, separators=(",", ":"))
    else:
        text = json.dumps(value, indent=2, default=str)
    sys.stdout.write(text + "\n")
