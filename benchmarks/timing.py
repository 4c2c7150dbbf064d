"""Round-robin timing shared by the benchmark scripts: every runner takes its turn within each repeat, so machine
load hits them alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def medians_ms(runners: dict[str, Callable[[], object]], repeats: int, clock: Callable[[], float]) -> dict[str, float]:
    """Median milliseconds of each runner over ``repeats`` round-robin repeats, after two warm-up calls each."""
    for run in runners.values():  # warm-up
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():  # round-robin
            start = clock()
            run()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}
