"""How every command prints its result: one JSON line with --json, else indented JSON."""
from __future__ import annotations

import json
import sys


def print_value(value, as_json: bool) -> None:
    if as_json:
        json.dump(value, sys.stdout, indent=None, separators=(",", ":"))
    else:
        json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
