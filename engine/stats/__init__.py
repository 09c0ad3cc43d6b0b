"""Process: mergeable moments (the currency between stages and partitions), count and time windows,
tumbling buckets, group-by, and the operators that hold one stream's rolling state.
"""
