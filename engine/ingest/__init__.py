"""Collect: sources (replay, tail, demo) that turn files into typed batches with a resumable position.

Also the parsers (CSV, JSON Lines) with their quarantine, encoding repair, uploads and the data-root confinement.
"""
