"""Pruning: criteria (magnitude, APoZ) and granularities (unstructured masks, structured rebuilds).

``prune()`` is the single entry point the CLI and the sweep use.
"""

from .api import PruneError, PruneResult, prune
from .energy import CollapseError

__all__ = ["CollapseError", "PruneError", "PruneResult", "prune"]
