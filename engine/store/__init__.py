"""Store: rows, quarantine, offsets and state committed together, and history read back.

duck.py is the embedded store (one DuckDB file per data folder).
"""
