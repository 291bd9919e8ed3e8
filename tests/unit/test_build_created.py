"""A built image's `created`: SOURCE_DATE_EPOCH when given (as BuildKit), else the newest input, never 1970."""

import os
from pathlib import Path

import pytest

from pyctr.build.context import BuildContext
from pyctr.build.executor import BuildOptions, newest_input_time, source_date_epoch, stage_created
from pyctr.errors import BuildError


def test_source_date_epoch_wins_over_everything():
    assert stage_created(1700000000, 1800000000.5, "2030-01-01T00:00:00Z") == "2023-11-14T22:13:20Z"


def test_without_it_the_newest_input_or_base_dates_the_image():
    assert stage_created(None, 1800000000.9, "2020-01-01T00:00:00.123456789Z") == "2027-01-15T08:00:00Z"
    assert stage_created(None, 1500000000, "2020-01-01T00:00:00.123456789Z") == "2020-01-01T00:00:00Z"
    assert stage_created(None, None, "2020-01-01T00:00:00Z") == "2020-01-01T00:00:00Z"


def test_never_the_epoch():
    assert not stage_created(None, None, None).startswith("1970")
    assert not stage_created(None, None, "1970-01-01T00:00:00Z").startswith("1970")


def test_source_date_epoch_from_option_build_arg_or_environment(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    ctx = Path("/nonexistent")
    assert source_date_epoch(BuildOptions(ctx)) is None
    assert source_date_epoch(BuildOptions(ctx, build_args={"SOURCE_DATE_EPOCH": "5"})) == 5
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "7")
    assert source_date_epoch(BuildOptions(ctx)) == 7
    assert source_date_epoch(BuildOptions(ctx, build_args={"SOURCE_DATE_EPOCH": "5"})) == 5
    assert source_date_epoch(BuildOptions(ctx, source_date_epoch=3)) == 3
    with pytest.raises(BuildError, match="invalid SOURCE_DATE_EPOCH: x"):
        source_date_epoch(BuildOptions(ctx, build_args={"SOURCE_DATE_EPOCH": "x"}))


def test_newest_input_ignores_dockerignored_files(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "kept").write_text("k")
    (tmp_path / "ignored").write_text("i")
    (tmp_path / ".dockerignore").write_text("ignored\n")
    for name, when in (("Dockerfile", 1000), ("kept", 2000), ("ignored", 9000), (".dockerignore", 500)):
        os.utime(tmp_path / name, (when, when))
    context = BuildContext.open(tmp_path, "Dockerfile")
    assert newest_input_time(context, tmp_path / "Dockerfile") == 2000
