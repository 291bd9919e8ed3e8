"""--user resolution from the container's own passwd/group text (runc's GetExecUser rules)."""

from __future__ import annotations

import pytest

from pyctr.errors import RuntimeFailure
from pyctr.runtime.users import additional_groups, parse_group, parse_passwd, process_groups, resolve_user

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


# Docker 20.10.24 (moby getUser): setgroups gets the primary gid, the user's groups from /etc/group, then
# --group-add; `id` in busybox prints getgroups() (sorted by the kernel). Recorded with Docker on the seed busybox
# image (/etc/group: root:x:0:, daemon:x:1:, nobody:x:65534:, app:x:1000:) and the GROUP text above.
@pytest.mark.parametrize(("spec", "group_add", "gids"), [
    ("", [], (0, 10)),                       # root, member of wheel
    ("app", [], (1000, 10, 50)),
    ("app:staff", [], (50,)),                # explicit group: it alone
    ("1234", [], (0,)),                      # not in passwd: gid 0, which is also its only group
    ("", ["1234"], (0, 10, 1234)),
    ("", ["staff", "1234", "staff"], None),  # a name given twice: runc refuses it ("Unable to find group")
    ("", ["wheel"], (0, 10, 10)),            # not deduplicated across primary, file and --group-add (Docker)
    ("app", ["0", "50"], (1000, 10, 50, 0, 50)),
])
def test_process_groups_as_docker(spec, group_add, gids):
    user = resolve_user(spec, PASSWD, GROUP)
    if gids is None:
        with pytest.raises(RuntimeFailure, match="^Unable to find group staff$"):
            process_groups(user, group_add, GROUP)
        return
    result = process_groups(user, group_add, GROUP)
    assert result.additional_gids == gids and (result.uid, result.gid) == (user.uid, user.gid)


@pytest.mark.parametrize(("group_add", "message"), [
    (["nosuch"], "Unable to find group nosuch"),
    (["99999999999"], "uids and gids must be in range 0-2147483647"),
])
def test_group_add_errors(group_add, message):
    with pytest.raises(RuntimeFailure, match=f"^{message}$"):
        additional_groups(group_add, GROUP)


def test_group_add_without_a_group_file_takes_numbers_only():
    assert additional_groups(["5", "5", "7"], "") == [5, 7]
    with pytest.raises(RuntimeFailure):
        additional_groups(["wheel"], "")
