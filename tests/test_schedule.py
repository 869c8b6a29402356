"""Learning-rate schedules are pure functions of the step (what makes resume exact)."""

import pytest

from deepwell.training.schedule import learning_rate_at


def curve(schedule: str, total: int = 1000) -> list[float]:
    return [learning_rate_at(step, total, 1e-3, schedule, 0.1) for step in range(total)]


def test_cosine_warms_up_then_decays():
    lr = curve("cosine")
    assert lr[0] < lr[50] < lr[99] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lr[100:], lr[101:], strict=False))
    assert lr[-1] == pytest.approx(1e-5, rel=0.05)


def test_onecycle_peaks_at_thirty_percent():
    lr = curve("onecycle")
    peak = max(range(len(lr)), key=lr.__getitem__)
    assert peak == 300 and lr[0] == pytest.approx(1e-3 / 25) and lr[-1] < 1e-6


def test_constant():
    assert set(curve("constant")) == {1e-3}
