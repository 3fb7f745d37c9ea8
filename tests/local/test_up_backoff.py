import pytest

from flotilla.local.backoff import Backoff


def test_delays_double_up_to_the_cap():
    backoff = Backoff(initial_s=1.0, factor=2.0, cap_s=10.0)
    assert [backoff.next_delay(ran_for_s=0.5) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.failures == 6


def test_a_process_that_ran_long_enough_starts_over():
    backoff = Backoff(initial_s=0.5, cap_s=30.0, stable_after_s=60.0)
    for _ in range(4):
        backoff.next_delay(ran_for_s=1.0)
    assert backoff.next_delay(ran_for_s=59.0) == 8.0
    assert backoff.next_delay(ran_for_s=61.0) == 0.5
    assert backoff.next_delay(ran_for_s=1.0) == 1.0


def test_thousands_of_failures_stay_at_the_cap():
    backoff = Backoff(initial_s=1.0, cap_s=30.0)
    delays = [backoff.next_delay(ran_for_s=0.0) for _ in range(5000)]
    assert delays[-1] == 30.0


@pytest.mark.parametrize("kwargs", [{"initial_s": -1}, {"factor": 0.5}, {"initial_s": 5, "cap_s": 1}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kwargs)
