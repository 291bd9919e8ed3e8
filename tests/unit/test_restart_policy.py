"""Restart policies as Docker 20.10 decides them: --restart parsing and validation, the back-off, which exits
restart, what `system boot` starts, and the state transitions behind `Restarting (N)`."""

import signal

import pytest

from pyctr.errors import PyctrError, UsageError
from pyctr.runtime import restart as rs
from pyctr.runtime import state as st


@pytest.mark.parametrize("text, name, count", [
    ("no", "no", 0), ("", "no", 0), ("always", "always", 0), ("unless-stopped", "unless-stopped", 0),
    ("on-failure", "on-failure", 0), ("on-failure:5", "on-failure", 5), ("no:0", "no", 0),
])
def test_parse_good_policies(text, name, count):
    assert rs.parse_restart_policy(text) == rs.RestartPolicy(name, count)


@pytest.mark.parametrize("text, error, message", [
    ("a:b:c", UsageError, "invalid restart policy format"),
    ("on-failure:x", UsageError, "maximum retry count must be an integer"),
    ("always:1", PyctrError, "maximum retry count cannot be used with restart policy 'always'"),
    ("unless-stopped:2", PyctrError, "maximum retry count cannot be used with restart policy 'unless-stopped'"),
    ("on-failure:-1", PyctrError, "maximum retry count cannot be negative"),
    ("sometimes", PyctrError, "invalid restart policy 'sometimes'"),
])
def test_parse_bad_policies(text, error, message):
    with pytest.raises(error) as info:
        rs.parse_restart_policy(text)
    assert info.value.message == message
    # the CLI's own parse errors are worded "Error: ...", the daemon's "Error response from daemon: ..."
    assert isinstance(info.value, UsageError) == (error is UsageError)


def test_auto_remove_conflicts_with_a_policy():
    rs.check_auto_remove(rs.RestartPolicy("no"), True)
    with pytest.raises(PyctrError, match="can't create 'AutoRemove' container with restart policy"):
        rs.check_auto_remove(rs.RestartPolicy("always"), True)


def test_backoff_doubles_to_a_minute_and_resets_after_ten_seconds():
    timeouts, timeout = [], 0
    for _ in range(12):
        timeout = rs.next_timeout_ms(timeout, ran_for_s=0.5)
        timeouts.append(timeout)
    assert timeouts[:5] == [100, 200, 400, 800, 1600]
    assert timeouts[-1] == 60_000 and max(timeouts) == 60_000
    assert rs.next_timeout_ms(60_000, ran_for_s=10.0) == 100
    assert rs.next_timeout_ms(60_000, ran_for_s=9.9) == 60_000


def decide(policy, code=1, count=0, stopped=False, canceled=False, timeout=0, ran=1.0):
    return rs.decide(rs.parse_restart_policy(policy), restart_count=count, timeout_ms=timeout, exit_code=code,
                     manually_stopped=stopped, canceled=canceled, ran_for_s=ran)


def test_which_exits_restart():
    assert not decide("no").restart
    assert decide("always", code=0).restart and decide("always", stopped=True).restart
    assert not decide("always", canceled=True).restart  # a stop/kill cancels even `always`
    assert decide("unless-stopped", code=0).restart and not decide("unless-stopped", stopped=True).restart
    assert decide("on-failure", code=1).restart and not decide("on-failure", code=0).restart
    assert decide("on-failure:3", count=2).restart and not decide("on-failure:3", count=3).restart
    assert decide("on-failure:0", count=1000).restart  # 0: no maximum


def test_decision_carries_the_backoff():
    first = decide("always", timeout=0)
    assert (first.delay_ms, first.timeout_ms) == (100, 100)
    later = decide("always", timeout=400)
    assert (later.delay_ms, later.timeout_ms) == (800, 800)
    refused = decide("on-failure", code=0, timeout=400)
    assert (refused.restart, refused.delay_ms, refused.timeout_ms) == (False, 0, 800)  # Docker doubles anyway


def test_cancel_rules_of_kill():
    assert rs.cancels_restart(signal.SIGKILL, signal.SIGTERM)
    assert rs.cancels_restart(signal.SIGTERM, signal.SIGTERM)
    assert not rs.cancels_restart(signal.SIGUSR1, signal.SIGTERM)
    assert rs.cancels_restart(signal.SIGUSR1, None)  # no stop signal configured: any signal


def state_of(status="exited", code=0, stopped=False, count=0):
    return st.ContainerState(status=status, exit_code=code, manually_stopped=stopped, restart_count=count)


def test_start_at_boot():
    always, unless, failure = (rs.parse_restart_policy(p) for p in ("always", "unless-stopped", "on-failure:2"))
    assert rs.start_at_boot(always, state_of(stopped=True))  # Docker's documented `always`
    assert rs.start_at_boot(unless, state_of(code=255)) and not rs.start_at_boot(unless, state_of(stopped=True))
    assert rs.start_at_boot(failure, state_of(code=255)) and not rs.start_at_boot(failure, state_of(code=0))
    assert not rs.start_at_boot(failure, state_of(code=1, count=2))
    assert not rs.start_at_boot(always, state_of(status="running"))
    assert not rs.start_at_boot(rs.RestartPolicy(), state_of(code=1))


def running(started_at="2024-01-01T00:00:00Z", **kw):
    s = st.started(st.ContainerState(**kw), 100, 5, 200, 6, "boot", at=started_at)
    return s


def test_exit_transition_to_restarting_and_back():
    now = st.parse_rfc3339("2024-01-01T00:00:01Z")
    new, decision = rs.exit_transition(running(), rs.parse_restart_policy("always"), 3, oom_killed=False,
                                       at="2024-01-01T00:00:01Z", now=now)
    assert decision.restart and decision.delay_ms == 100
    assert new.status == "restarting" and new.running and new.pid == 0 and new.exit_code == 3
    assert new.restart_count == 1 and new.monitor_pid == 200 and new.restart_timeout_ms == 100
    new2, decision2 = rs.exit_transition(st.started(new, 101, 7, 201, 8, "boot", at="2024-01-01T00:00:01Z"),
                                         rs.parse_restart_policy("always"), 3, oom_killed=False, at=None, now=now)
    assert decision2.delay_ms == 200 and new2.restart_count == 2
    stopped = rs.user_signal_state(st.started(new2, 102, 9, 202, 10, "boot"), cancel=True)
    gone, decision3 = rs.exit_transition(stopped, rs.parse_restart_policy("always"), 143, oom_killed=False,
                                         at=None, now=now)
    assert not decision3.restart and gone.status == "exited" and gone.restart_count == 2 and gone.monitor_pid == 0
    fresh = rs.user_start_state(gone)
    assert (fresh.restart_count, fresh.restart_timeout_ms, fresh.manually_stopped, fresh.restart_canceled) == \
        (0, 0, False, False)


def test_a_long_run_resets_the_backoff():
    now = st.parse_rfc3339("2024-01-01T00:00:30Z")
    _, decision = rs.exit_transition(running(restart_timeout_ms=60_000), rs.parse_restart_policy("always"), 1,
                                     oom_killed=False, at=None, now=now)
    assert decision.delay_ms == 100


def test_state_keys_round_trip():
    s = st.restarting(running(), 2, restart_count=4, timeout_ms=800)
    data = s.to_dict()
    assert data["Status"] == "restarting" and data["RestartCount"] == 4 and data["RestartTimeoutMs"] == 800
    assert st.ContainerState.from_dict(data) == s


def test_policy_round_trip():
    policy = rs.RestartPolicy("on-failure", 3)
    assert policy.to_dict() == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert rs.RestartPolicy.from_dict(policy.to_dict()) == policy
    assert rs.RestartPolicy.from_dict(None).is_none
