"""Commands registered on `aco-lab` (filled in by their issue)."""

COMMANDS: list = []
