"""Resolve `--user` against the container's own /etc/passwd and /etc/group text.

Never through the host's NSS (getpwnam): loading NSS modules while chrooted
into a container runs the image's shared libraries as host root
(CVE-2019-14271). The rules copy runc's GetExecUser: a name must exist, a
number need not (uid with gid 0 and home "/"), an explicit group replaces the
primary group, and without one the user's supplementary groups come from the
group file's member lists. `process_groups` adds what Docker's daemon adds on
top (moby getUser): the primary gid and the --group-add groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyctr.errors import RuntimeFailure

MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class PasswdEntry:
    """One line of the container's /etc/passwd (the fields user resolution needs)."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    """One line of the container's /etc/group."""

    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecUser:
    """Who the container's process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = field(default_factory=tuple)
    home: str = "/"

    def __iter__(self):
        """Unpack as (uid, gid, additional_gids, home), the brief's tuple form."""
        return iter((self.uid, self.gid, list(self.additional_gids), self.home))


def parse_passwd(text: str) -> list[PasswdEntry]:
    """name:password:uid:gid:gecos:home:shell lines; malformed lines are skipped like libc does."""
    entries = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) < 4 or line.startswith("#"):
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        entries.append(PasswdEntry(parts[0], uid, gid, parts[5] if len(parts) > 5 else ""))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """name:password:gid:member,member lines."""
    entries = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = tuple(m for m in (parts[3].split(",") if len(parts) > 3 else []) if m)
        entries.append(GroupEntry(parts[0], gid, members))
    return entries


def _numeric(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise RuntimeFailure(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def _find_user(user_arg: str, passwd: list[PasswdEntry]) -> PasswdEntry | None:
    number = _numeric(user_arg)
    for entry in passwd:
        if (number is None and entry.name == user_arg) or (number is not None and entry.uid == number):
            return entry
    if number is None:
        raise RuntimeFailure(f"unable to find user {user_arg}: no matching entries in passwd file")
    return None


def _find_group(group_arg: str, groups: list[GroupEntry]) -> int:
    number = _numeric(group_arg)
    for entry in groups:
        if (number is None and entry.name == group_arg) or (number is not None and entry.gid == number):
            return entry.gid
    if number is None:
        raise RuntimeFailure(f"unable to find group {group_arg}: no matching entries in group file")
    return number


def resolve_user(user_spec: str, passwd_text: str, group_text: str) -> ExecUser:
    """Turn "", "name", "uid", "name:group", "uid:gid" into ids, as Docker does.

    Returns an ExecUser (uid, gid, additional_gids, home); it also unpacks as a
    4-tuple. Raises RuntimeFailure with runc's wording when a name is unknown.
    """
    user_arg, _, group_arg = (user_spec or "").partition(":")
    user_arg = user_arg or "0"
    passwd = parse_passwd(passwd_text)
    entry = _find_user(user_arg, passwd)
    if entry is None:
        uid, gid, home, name = int(user_arg), 0, "/", ""
    else:
        uid, gid, home, name = entry.uid, entry.gid, entry.home or "/", entry.name
    groups = parse_group(group_text)
    additional: tuple[int, ...] = ()
    if group_arg:
        gid = _find_group(group_arg, groups)
    elif name:
        additional = tuple(dict.fromkeys(g.gid for g in groups if name in g.members))
    return ExecUser(uid, gid, additional, home)


def additional_groups(group_add: list[str], group_text: str) -> list[int]:
    """--group-add values as gids: runc's GetAdditionalGroups (a name or a gid listed in the group file, or any
    gid in range; each gid once). An unknown name fails with Docker's wording."""
    groups = parse_group(group_text)
    gids: list[int] = []
    for wanted in group_add:
        match = next((g.gid for g in groups if wanted in (g.name, str(g.gid)) and g.gid not in gids), None)
        if match is None:
            if not wanted.isdigit():
                raise RuntimeFailure(f"Unable to find group {wanted}")
            match = _numeric(wanted)
        if match not in gids:
            gids.append(match)
    return gids


def process_groups(user: ExecUser, group_add: list[str], group_text: str) -> ExecUser:
    """The user with the supplementary groups Docker gives the process (moby 20.10.24 getUser, the fix of
    CVE-2023-25173): the primary gid first, then the user's groups from the group file, then --group-add.

    Not deduplicated across the three, as Docker does not (the kernel keeps what setgroups gets, sorted)."""
    gids = (user.gid, *user.additional_gids, *additional_groups(group_add, group_text))
    return ExecUser(user.uid, user.gid, gids, user.home)
