"""JSON for pyctr-runtime's every-call paths, without importing the `json` package.

`import json` imports `re`, and `re` imports enum, functools and collections: several milliseconds of each
cold start, which containerd and podman pay on every state, start, kill and delete, and create pays before it
can read config.json. The work itself is done by `_json`, the C accelerator `json` uses, so what is parsed and
how strings are escaped is json's; documents json would refuse, and interpreters without `_json`, go through
`json` itself (the error messages are then json's own).
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # another interpreter: json does it all
    _json = None

_BLANKS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _DecoderSettings:
    """What `_json.make_scanner` reads from a decoder: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scanner: list = []


def loads(text: str | bytes) -> object:
    """json.loads for UTF-8 text (bytes or str); raises ValueError (json's JSONDecodeError) as json does."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return _json_module().loads(text)
    if _json is None or text.startswith("\ufeff"):
        return _json_module().loads(text)
    if not _scanner:
        _scanner.append(_json.make_scanner(_DecoderSettings()))
    start = _skip_blanks(text, 0)
    try:
        value, end = _scanner[0](text, start)
    except StopIteration:  # nothing at `start` (empty text): json's own message
        return _json_module().loads(text)
    if _skip_blanks(text, end) != len(text):
        return _json_module().loads(text)  # "Extra data", worded by json
    return value


def _skip_blanks(text: str, index: int) -> int:
    while index < len(text) and text[index] in _BLANKS:
        index += 1
    return index


def dumps(value: object, indent: int | None = None, separators: tuple[str, str] | None = None,
          sort_keys: bool = False) -> str:
    """json.dumps(value, indent=..., separators=..., sort_keys=...) for dicts with string keys, lists, tuples,
    strings, numbers, booleans and None (ensure_ascii, as json's default)."""
    if _json is None:
        return _json_module().dumps(value, indent=indent, separators=separators, sort_keys=sort_keys)
    item_sep, key_sep = separators or ((",", ": ") if indent is not None else (", ", ": "))
    chunks: list[str] = []
    _encode(value, chunks, indent, 0, item_sep, key_sep, sort_keys)
    return "".join(chunks)


def _encode(value: object, out: list[str], indent: int | None, level: int, item_sep: str, key_sep: str,
            sort_keys: bool = False) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None or value is True or value is False:
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        items = [(_key(k), v) for k, v in value.items()]
        if sort_keys:
            items.sort(key=lambda item: item[0])
        _encode_items(items, "{", "}", out, indent, level, item_sep, key_sep, sort_keys)
    elif isinstance(value, (list, tuple)):
        _encode_items([(None, v) for v in value], "[", "]", out, indent, level, item_sep, key_sep, sort_keys)
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode_items(items: list, opening: str, closing: str, out: list[str], indent: int | None, level: int,
                  item_sep: str, key_sep: str, sort_keys: bool) -> None:
    if not items:
        out.append(opening + closing)
        return
    inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
    out.append(opening)
    for number, (key, item) in enumerate(items):
        out.append((item_sep if number else "") + inner)
        if key is not None:
            out.append(_json.encode_basestring_ascii(key) + key_sep)
        _encode(item, out, indent, level + 1, item_sep, key_sep, sort_keys)
    out.append(("" if indent is None else "\n" + " " * (indent * level)) + closing)


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return _json_module().dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float(number: float) -> str:
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    return float.__repr__(number)


def _json_module():
    import json

    return json
