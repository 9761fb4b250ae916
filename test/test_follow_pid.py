"""The followers' PID: gains, anti-windup, deadband, output/rate limits, smoothing, resets."""

from __future__ import annotations

import math

import pytest

from ocean_ros.follow.pid import Pid, PidConfig

DT = 0.01


def run(pid: Pid, error: float, steps: int, dt: float = DT) -> list[float]:
    return [pid.update(error, dt) for _ in range(steps)]


def test_proportional_term():
    pid = Pid(PidConfig(kp=2.0))
    assert pid.update(0.3, DT) == pytest.approx(0.6)
    assert pid.update(-0.1, DT) == pytest.approx(-0.2)


def test_integral_accumulates_error_times_time():
    pid = Pid(PidConfig(kp=0.0, ki=0.5))
    outputs = run(pid, 0.2, 100)
    assert outputs[-1] == pytest.approx(0.5 * 0.2 * 1.0)  # ki * error * 1 s
    assert all(b > a for a, b in zip(outputs, outputs[1:], strict=False))


def test_derivative_acts_on_error_changes_without_a_first_sample_kick():
    pid = Pid(PidConfig(kp=0.0, kd=0.1))
    assert pid.update(1.0, DT) == 0.0  # no history: no derivative kick
    assert pid.update(1.2, DT) == pytest.approx(0.1 * 0.2 / DT)


def test_output_limit_holds_under_extreme_input():
    pid = Pid(PidConfig(kp=10.0, ki=10.0, kd=1.0, output_limit=1.5))
    for error in (1e9, -1e9, 3.0, -1e6):
        assert all(abs(u) <= 1.5 for u in run(pid, error, 20))
    assert pid.update(1e9, DT) == pytest.approx(1.5)


def test_non_finite_error_or_time_step_leaves_the_output_unchanged():
    pid = Pid(PidConfig(kp=1.0))
    before = pid.update(0.5, DT)
    for error, dt in ((math.nan, DT), (math.inf, DT), (0.1, 0.0), (0.1, -1.0), (0.1, math.nan)):
        assert pid.update(error, dt) == before


def test_rate_limit_ramps_from_zero_and_back():
    pid = Pid(PidConfig(kp=1.0, rate_limit=2.0))
    outputs = run(pid, 1.0, 60)
    steps = [b - a for a, b in zip([0.0, *outputs], outputs, strict=False)]
    assert max(abs(s) for s in steps) <= 2.0 * DT + 1e-12
    assert outputs[9] == pytest.approx(0.2)  # 10 steps of 0.02
    assert outputs[-1] == pytest.approx(1.0)  # reached after 0.5 s
    down = run(pid, -1.0, 5)
    assert down[-1] == pytest.approx(1.0 - 5 * 2.0 * DT)


def test_anti_windup_integral_stops_growing_while_saturated():
    limited = Pid(PidConfig(kp=1.0, ki=2.0, output_limit=0.5))
    free = Pid(PidConfig(kp=1.0, ki=2.0))
    run(limited, 1.0, 500)  # 5 s far outside the limit
    run(free, 1.0, 500)
    assert limited.integral < 0.25 + 1e-9  # kept where ki*integral still fits in the limit
    assert free.integral == pytest.approx(5.0)
    # the error changes sign: the limited PID reverses at once; a wound-up one would stay positive for seconds
    reversed_outputs = run(limited, -0.2, 10)
    assert reversed_outputs[-1] < 0


def test_anti_windup_also_covers_rate_limit_and_caller_bounds():
    pid = Pid(PidConfig(kp=1.0, ki=1.0, rate_limit=0.1))
    run(pid, 1.0, 100)  # output ramps slowly: the integral must not run ahead of it
    assert pid.integral == 0.0
    bounded = Pid(PidConfig(kp=1.0, ki=1.0))
    for _ in range(100):
        assert bounded.update(1.0, DT, low=-0.3, high=0.3) <= 0.3
    assert bounded.integral < 0.01


def test_integral_limit_clamps_the_integral_contribution():
    pid = Pid(PidConfig(kp=0.0, ki=1.0, integral_limit=0.2))
    assert run(pid, 1.0, 300)[-1] == pytest.approx(0.2)
    assert run(pid, -1.0, 600)[-1] == pytest.approx(-0.2)


def test_deadband_gives_zero_output_and_freezes_the_integral():
    pid = Pid(PidConfig(kp=2.0, ki=1.0, deadband=0.05))
    assert run(pid, 0.04, 10) == [0.0] * 10
    assert pid.integral == 0.0
    assert pid.update(0.06, DT) == pytest.approx(2.0 * 0.06 + 1.0 * 0.06 * DT)
    frozen = pid.integral
    assert pid.update(-0.01, DT) == 0.0
    assert pid.integral == frozen


def test_smoothing_is_a_first_order_low_pass_with_the_given_time_constant():
    tau = 0.2
    pid = Pid(PidConfig(kp=1.0, smoothing_s=tau))
    pid.update(0.0, DT)  # the filter starts at the first sample
    outputs = run(pid, 1.0, int(round(tau / DT)))
    assert outputs[-1] == pytest.approx(1 - math.exp(-1), abs=0.03)  # 63 % after one time constant
    assert run(pid, 1.0, 200)[-1] == pytest.approx(1.0, abs=1e-3)


def test_reset_forgets_everything():
    pid = Pid(PidConfig(kp=1.0, ki=1.0, kd=0.5, smoothing_s=0.1, rate_limit=100.0))
    run(pid, 0.5, 50)
    pid.reset()
    assert (pid.integral, pid.output, pid.filtered) == (0.0, 0.0, None)
    fresh = Pid(pid.config)
    assert run(pid, -0.3, 5) == run(fresh, -0.3, 5)


@pytest.mark.parametrize(
    "kwargs",
    [{"kp": -1.0}, {"ki": math.nan}, {"kd": math.inf}, {"output_limit": 0.0}, {"rate_limit": -1.0},
     {"deadband": -0.1}, {"smoothing_s": math.inf}],
)
def test_invalid_configurations_are_refused(kwargs):
    with pytest.raises(ValueError):
        PidConfig(**kwargs)
