"""Preprocess: pipeline specs and versions, the step kinds, safe expressions.

And backfill, which re-runs stored history through a version.
"""
