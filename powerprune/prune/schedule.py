"""Sparsity schedules for gradual pruning."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity rising from ``initial`` to ``final`` between ``begin`` and ``end`` steps, cubic by
    default (Zhu & Gupta 2017, the schedule tfmot calls PolynomialDecay): prune fast while the network
    has redundancy, slowly once every weight matters. Masks change only every ``frequency`` steps so
    the optimizer can recover in between."""

    initial: float
    final: float
    begin: int
    end: int
    frequency: int = 50
    power: float = 3.0

    def sparsity(self, step: int) -> float:
        if step <= self.begin:
            return self.initial
        if step >= self.end:
            return self.final
        frac = (step - self.begin) / (self.end - self.begin)
        return self.final + (self.initial - self.final) * (1.0 - frac) ** self.power

    def due(self, step: int) -> bool:
        """Whether the masks should be recomputed at this step (always at the last one)."""
        return step == self.end or (self.begin <= step < self.end and (step - self.begin) % self.frequency == 0)
