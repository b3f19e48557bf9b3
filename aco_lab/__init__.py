"""ACO lab: the offline toolkit that turns agent traces into trained, evaluated tier routers."""

from aco import __version__

__all__ = ["__version__"]
