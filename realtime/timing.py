"""Wall time per pipeline stage, for the FPS line and the benchmark's per-stage table."""

import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name].append(time.perf_counter() - start)

    def summary(self) -> dict:
        """Per stage: calls, mean, p50 and p95 in milliseconds."""
        return {name: {"calls": len(values), "mean_ms": 1e3 * float(np.mean(values)),
                       "p50_ms": 1e3 * float(np.percentile(values, 50)),
                       "p95_ms": 1e3 * float(np.percentile(values, 95))}
                for name, values in self.seconds.items()}


class FpsMeter:
    """Frames per second over the last `window` seconds."""

    def __init__(self, window: float = 1.0):
        self.window = window
        self.times: list[float] = []

    def tick(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        self.times.append(now)
        self.times = [t for t in self.times if now - t <= self.window]
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0
