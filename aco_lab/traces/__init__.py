"""Trace files in, checked tables out.

The format's schema and parser, reading, validation, ingest to Parquet, labels, request splits
and holdout files.
"""
