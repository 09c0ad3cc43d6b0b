"""Read: the immutable snapshot pages and the CLI read, views over it (filters, pairs, rates),
and downloads (CSV with formula cells escaped, Parquet).
"""
