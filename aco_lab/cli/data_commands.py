"""Commands over trace files: validate, ingest, stats, simulate."""

COMMANDS: list = []
