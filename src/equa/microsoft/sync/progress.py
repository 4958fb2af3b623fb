"""A run's progress: shared between the run and its heartbeat; also what the CLI's progress bar shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Shared between the run and its heartbeat; also what the CLI's progress bar shows."""

    phase: str = "starting"
    done: int = 0
    total: int = 0
    newly_flagged: int = 0
    listeners: list[Callable[[Progress], None]] = field(default_factory=list)

    def set_phase(self, phase: str, total: int | None = None) -> None:
        self.phase = phase
        if total is not None:
            self.total = total
            self.done = 0
        self._notify()

    def advance(self, count: int) -> None:
        self.done += count
        self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)
