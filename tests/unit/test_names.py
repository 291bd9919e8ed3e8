"""Container ids and names: Docker's shapes, validation and collision handling."""

import random
import re

import pytest

from pyctr.errors import UsageError
from pyctr.runtime import names


def test_new_id_is_64_hex_and_random():
    ids = {names.new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)


def test_short_id_is_first_12():
    cid = names.new_id()
    assert names.short_id(cid) == cid[:12]


@pytest.mark.parametrize("name", ["web", "a1", "my_app.v2-test", "/web", "X_y"])
def test_valid_names(name):
    assert names.validate_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "-web", "_web", "we b", "web/x", "", "é1", "web!"])
def test_invalid_names_use_dockers_message(name):
    with pytest.raises(UsageError, match=r"Invalid container name .*only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed"):
        names.validate_name(name)


def test_generated_names_are_adjective_surname_and_valid():
    rng = random.Random(1)
    for _ in range(200):
        name = names.random_name(rng)
        adjective, surname = name.split("_")
        assert adjective in names.ADJECTIVES and surname in names.SURNAMES
        assert names.validate_name(name) == name
        assert name != "boring_wozniak"


def test_generated_names_are_varied():
    """Docker's lists give ~25,000 names: 1,000 draws must not collide much (a short or duplicated list would)."""
    rng = random.Random(3)
    drawn = [names.random_name(rng) for _ in range(1000)]
    assert len(set(drawn)) >= 970
    assert len({n.split("_")[0] for n in drawn}) >= 90 and len({n.split("_")[1] for n in drawn}) >= 180


def test_pick_name_avoids_taken_names_and_appends_digit_when_crowded():
    rng = random.Random(7)
    taken = {f"{a}_{s}" for a in names.ADJECTIVES for s in names.SURNAMES}
    name = names.pick_name(taken, rng)
    assert name not in taken
    assert re.fullmatch(r"[a-z]+_[a-z]+\d+", name)


def test_id_prefix_detection():
    assert names.looks_like_id_prefix("abc123")
    assert not names.looks_like_id_prefix("web")
    assert not names.looks_like_id_prefix("")
