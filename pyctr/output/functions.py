"""The functions a `--format` template may call: Go's built-ins and docker-cli's templates.basicFunctions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from pyctr.output.govalues import NO_VALUE, Stringer, go_float, go_json, go_print, go_type, truth


class CallError(Exception):
    """A function refused its arguments; reported as `error calling NAME: ...`."""


def want_str(value: Any) -> str:
    if value is NO_VALUE:
        raise ArgumentError("invalid value; expected string")
    if not isinstance(value, str):
        raise ArgumentError(f"wrong type for value; expected string; got {go_type(value)}")
    return value


def want_int(value: Any) -> int:
    if value is NO_VALUE:
        raise ArgumentError("invalid value; expected int")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"wrong type for value; expected int; got {go_type(value)}")
    return value


class ArgumentError(Exception):
    """An argument of the wrong Go type (reported at the argument's node)."""


def _fn_json(value: Any) -> str:
    return go_json(value, escape_html=False)


def _fn_split(text: Any, sep: Any) -> list[str]:
    text, sep = want_str(text), want_str(sep)
    if sep == "":
        return list(text)
    return text.split(sep)


def _fn_join(elems: Any, sep: Any) -> str:
    sep = want_str(sep)
    if elems is None or elems is NO_VALUE:
        return ""
    if isinstance(elems, list):
        return sep.join(go_print(e, False) for e in elems)
    if isinstance(elems, dict):
        return sep.join(sorted(go_print(v, False) for v in elems.values()))
    raise CallError(f"expected slice, got {go_type(elems)}")


def _fn_title(text: Any) -> str:
    """strings.Title: upper-case the first letter of each word (words split at non-letters/digits/_)."""
    out, prev = [], " "
    for c in want_str(text):
        out.append(c.upper() if _is_separator(prev) else c)
        prev = c
    return "".join(out)


def _is_separator(c: str) -> bool:
    if ord(c) <= 0x7F:
        return not (c.isalnum() or c == "_")
    if unicodedata.category(c)[0] in "LN":
        return False
    return c.isspace()


def _fn_truncate(text: Any, length: Any) -> str:
    raw, n = want_str(text).encode(), want_int(length)
    if len(raw) < n:
        return raw.decode()
    return raw[:n].decode(errors="ignore")


def _fn_pad(text: Any, prefix: Any, suffix: Any) -> str:
    text, prefix, suffix = want_str(text), want_int(prefix), want_int(suffix)
    if text == "":
        return text
    return " " * prefix + text + " " * suffix


def _fn_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (list, dict)):
        return len(value)
    if value is None or value is NO_VALUE:
        raise CallError("len of nil pointer")
    raise CallError(f"len of type {go_type(value)}")


def _fn_index(item: Any, *keys: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise CallError("index of untyped nil")
    for key in keys:
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise CallError(f"value has type {go_type(key)}; should be string")
            item = item.get(key)
        elif isinstance(item, (list, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise CallError(f"cannot index slice/array with type {go_type(key)}")
            if not 0 <= key < len(item):
                raise CallError(f"index out of range: {key}")
            item = item[key] if isinstance(item, list) else item.encode()[key]
        elif item is None:
            raise CallError("index of nil pointer")
        else:
            raise CallError(f"can't index item of type {go_type(item)}")
    return item


def _fn_slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, (str, list)):
        raise CallError(f"can't slice item of type {go_type(item)}")
    bounds = [want_int(i) for i in indexes]
    if len(bounds) > 2:
        raise CallError("too many slice indexes")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise CallError(f"index out of range: {end if end > len(item) else start}")
    return item[start:end]


def _basic(value: Any) -> tuple[str, Any]:
    if value is NO_VALUE or value is None:
        raise CallError("invalid type for comparison")
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "int", value
    if isinstance(value, float):
        return "float", value
    if isinstance(value, str):
        return "string", value
    raise CallError("invalid type for comparison")


def _fn_eq(first: Any, *others: Any) -> bool:
    if not others:
        raise CallError("missing argument for comparison")
    kind, a = _basic(first)
    for other in others:
        other_kind, b = _basic(other)
        if other_kind != kind:
            raise CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    kind_a, va = _basic(a)
    kind_b, vb = _basic(b)
    if kind_a != kind_b:
        raise CallError("incompatible types for comparison")
    if kind_a == "bool":
        raise CallError("invalid type for comparison")
    return va, vb


def _fn_lt(a: Any, b: Any) -> bool:
    va, vb = _ordered(a, b)
    return va < vb


def _fn_le(a: Any, b: Any) -> bool:
    va, vb = _ordered(a, b)
    return va <= vb


def _fn_gt(a: Any, b: Any) -> bool:
    va, vb = _ordered(a, b)
    return va > vb


def _fn_ge(a: Any, b: Any) -> bool:
    va, vb = _ordered(a, b)
    return va >= vb


def _fn_not(value: Any) -> bool:
    return not truth(value)


def _fn_print(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(a, False) if a is not NO_VALUE else "<invalid reflect.Value>")
    return "".join(out)


def _fn_println(*args: Any) -> str:
    return " ".join(go_print(a, False) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?([a-zA-Z%])")


def _fn_printf(fmt: Any, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use (%s %v %d %q %t %x %X %o %b %c %f %e %g %%) with flags/width."""
    fmt = want_str(fmt)
    out, pos, n = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, precision, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(args[n], flags, width, precision, verb))
        n += 1
    out.append(fmt[pos:])
    if n < len(args):
        extra = ", ".join(f"{go_type(a)}={go_print(a, False)}" for a in args[n:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(arg: Any, flags: str, width: str | None, precision: str | None, verb: str) -> str:
    text = _format_verb(arg, flags, precision, verb)
    if width and width.isdigit() and len(text) < int(width):
        w = int(width)
        if "-" in flags:
            text = text.ljust(w)
        elif "0" in flags and verb in "dxXobfeEgG" and isinstance(arg, (int, float)):
            sign = text[0] if text[:1] in "+-" else ""
            text = sign + text[len(sign):].rjust(w - len(sign), "0")
        else:
            text = text.rjust(w)
    return text


def _format_verb(arg: Any, flags: str, precision: str | None, verb: str) -> str:
    bad = f"%!{verb}({go_type(arg)}={go_print(arg, False)})"
    prec = int(precision) if precision and precision.isdigit() else None
    if verb in "vs":
        text = go_print(arg, False) if verb == "v" or isinstance(arg, (str, Stringer)) else None
        if text is None:
            return bad if not isinstance(arg, (list, dict)) else go_print(arg, False)
        return text[:prec] if prec is not None and verb == "s" else text
    if verb == "q":
        if isinstance(arg, str):
            return go_json(arg)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return "'" + chr(arg) + "'"
        return bad
    if verb == "t":
        return ("true" if arg else "false") if isinstance(arg, bool) else bad
    if verb in "dxXobc":
        if isinstance(arg, bool) or not isinstance(arg, int):
            if verb in "xX" and isinstance(arg, str):
                hexed = arg.encode().hex()
                return hexed.upper() if verb == "X" else hexed
            return bad
        if verb == "c":
            return chr(arg)
        spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
        sign = "+" if "+" in flags and arg >= 0 else ""
        return sign + format(arg, spec)
    if verb in "feEgG":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            return bad
        if verb in "gG" and prec is None:
            return go_float(float(arg))
        return format(float(arg), f"{'+' if '+' in flags else ''}.{6 if prec is None else prec}{verb}")
    return bad


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's built-ins (and/or are special forms: evaluated lazily in _Exec)
    "and": lambda *a: a[-1], "or": lambda *a: a[-1], "not": _fn_not, "len": _fn_len, "index": _fn_index,
    "slice": _fn_slice, "print": _fn_print, "printf": _fn_printf, "println": _fn_println,
    "eq": _fn_eq, "ne": _fn_ne, "lt": _fn_lt, "le": _fn_le, "gt": _fn_gt, "ge": _fn_ge,
    # docker-cli's templates.basicFunctions
    "json": _fn_json, "split": _fn_split, "join": _fn_join, "title": _fn_title,
    "lower": lambda s: want_str(s).lower(), "upper": lambda s: want_str(s).upper(),
    "pad": _fn_pad, "truncate": _fn_truncate,
}

# docker-cli's templates.HeaderFunctions: a table's header row keeps the column names intact
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **FUNCTIONS,
    "json": lambda v: want_str(v), "split": lambda v, _s: want_str(v), "join": lambda v, _s: want_str(v),
    "title": lambda v: want_str(v), "lower": lambda v: want_str(v), "upper": lambda v: want_str(v),
    "truncate": lambda v, _n: want_str(v),
}
