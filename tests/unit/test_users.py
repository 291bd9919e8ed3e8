"""--user resolution from the container's own passwd/group text (runc's GetExecUser rules)."""

from __future__ import annotations

import pytest

from pyctr.errors import RuntimeFailure
from pyctr.runtime.users import parse_group, parse_passwd, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
# comment line
broken:x:notanumber:0::/:/bin/sh
"""
GROUP = """root:x:0:
wheel:x:10:root,app
staff:x:50:app
app:x:1000:
"""


@pytest.mark.parametrize(("spec", "expected"), [
    ("", (0, 0, [10], "/root")),
    ("root", (0, 0, [10], "/root")),
    ("0", (0, 0, [10], "/root")),
    ("app", (1000, 1000, [10, 50], "/home/app")),
    ("1000", (1000, 1000, [10, 50], "/home/app")),
    ("1234", (1234, 0, [], "/")),  # numeric ids need not exist (Docker)
    ("1234:5678", (1234, 5678, [], "/")),
    ("app:staff", (1000, 50, [], "/home/app")),  # explicit group: no supplementary groups
    ("app:0", (1000, 0, [], "/home/app")),
])
def test_resolve(spec, expected):
    assert tuple(resolve_user(spec, PASSWD, GROUP)) == expected


def test_unknown_user_message_is_dockers():
    with pytest.raises(RuntimeFailure, match="unable to find user nobody: no matching entries in passwd file"):
        resolve_user("nobody", PASSWD, GROUP)


def test_unknown_group_message():
    with pytest.raises(RuntimeFailure, match="unable to find group nogroup: no matching entries in group file"):
        resolve_user("app:nogroup", PASSWD, GROUP)


def test_out_of_range():
    with pytest.raises(RuntimeFailure, match="must be in range"):
        resolve_user("99999999999", PASSWD, GROUP)


def test_empty_files_mean_root_defaults():
    assert tuple(resolve_user("", "", "")) == (0, 0, [], "/")


def test_parsers_skip_malformed_lines():
    assert [e.name for e in parse_passwd(PASSWD)] == ["root", "daemon", "app"]
    assert parse_group(GROUP)[1].members == ("root", "app")
