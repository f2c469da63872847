import math

import pytest

from irnet_edge.train import EDESchedule


@pytest.mark.parametrize("t_min", [1e-3, 0.1])
def test_schedule_values_at_start_middle_and_end(t_min):
    schedule = EDESchedule(t_min=t_min, t_max=10.0)
    n = 400
    k0, t0 = schedule.at(0, n)
    assert t0 == pytest.approx(t_min) and k0 == pytest.approx(1 / t_min)
    k_mid, t_mid = schedule.at(n // 2, n)
    assert t_mid == pytest.approx(math.sqrt(t_min * 10.0))  # geometric midpoint
    assert k_mid == pytest.approx(max(1 / t_mid, 1.0))
    k_end, t_end = schedule.at(n - 1, n)
    assert t_end == pytest.approx(t_min * 10 ** ((n - 1) / n * math.log10(10.0 / t_min)))
    assert t_end < 10.0 and k_end == 1.0


def test_k_is_one_once_t_passes_one():
    schedule = EDESchedule(t_min=0.1)
    ks = [schedule.at(i, 10)[0] for i in range(10)]
    assert ks[:5] == pytest.approx([10 ** (1 - 0.2 * i) for i in range(5)])
    assert ks[5:] == [1.0] * 5


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError):
        EDESchedule(t_min=0.0)
    with pytest.raises(ValueError):
        EDESchedule(t_min=0.1, per="batch")
