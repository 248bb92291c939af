"""Pruning: criteria (magnitude, APoZ) and granularities (unstructured masks, structured rebuilds).

``prune()`` is the single entry point the CLI and the sweep use.
"""

from .api import PruneError, PruneResult, prune

__all__ = ["PruneError", "PruneResult", "prune"]
