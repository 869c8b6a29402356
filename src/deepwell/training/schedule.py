"""Learning rate as a pure function of the step, so a resumed run continues on exactly the same curve."""

from __future__ import annotations

import math


def learning_rate_at(step: int, total_steps: int, peak: float, schedule: str, warmup_fraction: float) -> float:
    if schedule == "constant":
        return peak
    if schedule == "onecycle":  # fastai/Smith: warm up from peak/25 over 30%, anneal to peak/1e4
        warmup = max(1, int(0.3 * total_steps))
        if step < warmup:
            return _cosine(step / warmup, peak / 25, peak)
        return _cosine((step - warmup) / max(1, total_steps - warmup), peak, peak / 1e4)
    warmup = int(warmup_fraction * total_steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    return _cosine((step - warmup) / max(1, total_steps - warmup), peak, peak * 0.01)


def _cosine(progress: float, start: float, end: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
