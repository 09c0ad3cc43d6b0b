"""Sources: each has next_batch() / position() / close()."""
