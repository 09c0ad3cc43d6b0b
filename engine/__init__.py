"""Rivulet's engine: sources, parse, pipeline, operators, store and snapshots. No Streamlit here."""
