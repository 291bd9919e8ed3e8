"""Healthchecks as Docker 20.10's daemon/health.go and docker-cli decide them (pure parts)."""

import pytest

from pyctr.errors import PyctrError, UsageError
from pyctr.runtime import health as h
from pyctr.runtime.ps import status_text

MS = 1_000_000
S = 1_000_000_000


def test_defaults_and_none():
    check = h.HealthConfig.from_docker({"Test": ["CMD-SHELL", "true"]})
    assert (check.interval_ns, check.timeout_ns, check.start_period_ns, check.retries) == (30 * S, 30 * S, 0, 3)
    assert h.HealthConfig.from_docker({"Test": ["NONE"]}) is None
    assert h.HealthConfig.from_docker({"Test": ["BOGUS", "x"]}) is None
    assert h.HealthConfig.from_docker(None) is None
    assert h.HealthConfig.from_docker({"Test": ["CMD", "true"], "Retries": 1, "Interval": 5 * MS}).retries == 1


def test_flags():
    assert h.healthcheck_from_flags(None, 0, 0, 0, 0, False) is None
    assert h.healthcheck_from_flags(None, 0, 0, 0, 0, True) == {"Test": ["NONE"]}
    assert h.healthcheck_from_flags("curl x", 2 * S, 0, 0, 2, False) == {
        "Test": ["CMD-SHELL", "curl x"], "Interval": 2 * S, "Timeout": 0, "StartPeriod": 0, "Retries": 2}
    with pytest.raises(UsageError, match="--no-healthcheck conflicts with --health-\\* options"):
        h.healthcheck_from_flags("x", 0, 0, 0, 0, True)
    with pytest.raises(UsageError, match="--health-interval cannot be negative"):
        h.healthcheck_from_flags("x", -1, 0, 0, 0, False)
    with pytest.raises(UsageError, match="--health-retries cannot be negative"):
        h.healthcheck_from_flags("x", 0, 0, 0, -1, False)
    with pytest.raises(PyctrError, match="Interval in Healthcheck cannot be less than 1ms"):
        h.healthcheck_from_flags("x", 10, 0, 0, 0, False)


def test_merge_takes_unset_fields_from_the_image():
    image = {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 4}
    assert h.merge_healthcheck(image, None) == image
    assert h.merge_healthcheck(image, {"Test": None, "Interval": 0, "Timeout": 0, "StartPeriod": 0, "Retries": 2}) == \
        {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 2}
    assert h.merge_healthcheck(image, {"Test": ["NONE"]})["Test"] == ["NONE"]
    assert h.merge_healthcheck(None, None) is None


def test_probe_argv():
    assert h.probe_argv(("CMD-SHELL", "echo hi")) == ["/bin/sh", "-c", "echo hi"]
    assert h.probe_argv(("CMD-SHELL", "echo hi"), ["/bin/bash", "-xc"]) == ["/bin/bash", "-xc", "echo hi"]
    assert h.probe_argv(("CMD", "cat", "/x")) == ["cat", "/x"]


def test_output_is_capped_as_docker():
    assert h.cap_output(b"ok\n", False) == "ok\n"
    big = b"x" * 5000
    assert h.cap_output(big, False) == "x" * 4096 + "..."
    assert h.cap_output(b"x" * 4096, True) == "x" * 4096 + "..."


def result(code, start="s"):
    return {"Start": start, "End": "e", "ExitCode": code, "Output": ""}


def test_apply_results():
    check = h.HealthConfig(("CMD", "true"), retries=2, start_period_ns=10 * S)
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    during = h.apply_result(health, result(1), check, started_at=100.0, result_start=105.0)
    assert during["Status"] == "starting" and during["FailingStreak"] == 0  # in the start period: not counted
    after1 = h.apply_result(during, result(1), check, 100.0, 111.0)
    assert after1["Status"] == "starting" and after1["FailingStreak"] == 1
    after2 = h.apply_result(after1, result(1), check, 100.0, 112.0)
    assert after2["Status"] == "unhealthy" and after2["FailingStreak"] == 2
    ok = h.apply_result(after2, result(0), check, 100.0, 113.0)
    assert ok["Status"] == "healthy" and ok["FailingStreak"] == 0
    # once healthy, a failure in the start period counts (the period only shields "starting")
    failed = h.apply_result(ok, result(1), check, 100.0, 113.5)
    assert failed["FailingStreak"] == 1 and failed["Status"] == "healthy"


def test_log_keeps_the_last_five():
    check = h.HealthConfig(("CMD", "true"))
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    for i in range(8):
        health = h.apply_result(health, result(0, start=str(i)), check, 0.0, 1.0)
    assert [entry["Start"] for entry in health["Log"]] == ["3", "4", "5", "6", "7"]


@pytest.mark.parametrize("ns, text", [(300 * MS, "300ms"), (30 * S, "30s"), (90 * S, "1m30s"), (3600 * S, "1h0m0s"),
                                      (1500 * MS, "1.5s")])
def test_go_duration(ns, text):
    assert h.go_duration(ns) == text


def test_ps_status_with_health():
    assert status_text("running", 0, 0.0, 0.0, 3.0, "starting") == "Up 3 seconds (health: starting)"
    assert status_text("running", 0, 0.0, 0.0, 3.0, "healthy") == "Up 3 seconds (healthy)"
    assert status_text("running", 0, 0.0, 0.0, 3.0, "unhealthy") == "Up 3 seconds (unhealthy)"
    assert status_text("paused", 0, 0.0, 0.0, 3.0, "healthy") == "Up 3 seconds (Paused)"
    assert status_text("exited", 1, 0.0, 1.0, 3.0, "unhealthy") == "Exited (1) 2 seconds ago"
