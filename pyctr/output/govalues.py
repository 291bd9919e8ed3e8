"""Go values as text/template sees them, and how Go prints and encodes them (fmt's %v, encoding/json).

docker-cli hands templates Go maps (inspect documents), structs with methods (ps/images contexts), Stringers
(Platform) and basic values; these classes stand for them so the engine can reproduce Go's output and errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pyctr.errors import ClientError


class TemplateError(ClientError):
    """A template that does not parse or fails while executing (docker-cli exits 1)."""

    exit_code = 1


class _NoValue:
    """Go's invalid reflect.Value: a missing map key. Prints as `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class GoStruct:
    """A Go struct value: `fields` are fields or argument-less methods, `methods` take arguments.

    `type_name` appears in errors ("can't evaluate field X in type *formatter.containerContext");
    `json_keys` lists what docker-cli's MarshalJSON emits (all argument-less methods, sorted), None = all fields.
    """

    type_name: str
    fields: dict[str, Any]
    methods: dict[str, Callable[..., Any]] = field(default_factory=dict)
    json_keys: tuple[str, ...] | None = None
    json_names: dict[str, str] = field(default_factory=dict)  # Go's `json:"..."` tags: field -> key
    omit_empty: tuple[str, ...] = ()  # fields tagged `omitempty`: left out of the JSON when empty


class GoMap(dict):
    """A Go map type with methods (docker-cli's SubHeaderContext has `Label`): methods first, then keys."""

    def __init__(self, items: dict, methods: dict[str, Callable[..., Any]]) -> None:
        super().__init__(items)
        self.methods = methods


@dataclass(frozen=True)
class Stringer:
    """A value with a String() method: `text` when printed, `json_value` when encoded, `fields` for `.X`."""

    text: str
    json_value: Any
    fields: dict[str, Any] = field(default_factory=dict)
    type_name: str = "*formatter.Platform"


# ---------------------------------------------------------------------------------------------- printing


def go_type(value: Any) -> str:
    """Go's %T of a value as docker-cli would hold it (errors name it)."""
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, Stringer):
        return value.type_name
    return "interface {}"


def go_float(value: float) -> str:
    """fmt's %v of a float64 (strconv 'g', shortest): exponent form below 1e-4 and from 1e6 ("1e+06")."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp10 = len(digits) + int(exponent) - 1
    minus = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return minus + format(Decimal(text).scaleb(exp10 - len(text) + 1), "f")


def go_print(value: Any, top: bool = True) -> str:
    """fmt.Sprint of a value as text/template prints it: true, <no value>, <nil>, map[k:v], [a b]."""
    if value is NO_VALUE or (value is None and top):
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Stringer):
        return value.text
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_print(k, False)}:{go_print(v, False)}" for k, v in
                                 sorted(value.items(), key=lambda kv: str(kv[0]))) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v, False) for v in value) + "]"
    if isinstance(value, GoStruct):
        return "{" + " ".join(go_print(v, False) for v in value.fields.values()) + "}"
    return str(value)


def go_json(value: Any, escape_html: bool = False) -> str:
    """encoding/json of a value (docker-cli's `json` function turns HTML escaping off; MarshalJSON leaves it on)."""
    if value is None or value is NO_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value, escape_html)
    if isinstance(value, Stringer):
        return go_json(value.json_value, escape_html)
    if isinstance(value, GoStruct) and value.json_keys is not None:
        # docker-cli's MarshalJSON marshals a map itself: keys sorted, HTML escaped whatever the caller asked
        return "{" + ",".join(f"{_json_string(k, True)}:{go_json(value.fields[k], True)}"
                              for k in sorted(value.json_keys)) + "}"
    if isinstance(value, GoStruct):
        return go_json({value.json_names.get(k, k): v for k, v in value.fields.items()
                        if not (k in value.omit_empty and v in ("", 0, None, [], {}))}, escape_html)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_string(str(k), escape_html)}:{go_json(v, escape_html)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v, escape_html) for v in value) + "]"
    return _json_string(str(value), escape_html)


def _json_float(value: float) -> str:
    """encoding/json's float64: plain digits from 1e-6 to 1e21, else exponent form without padding ("1e-7")."""
    if value == 0 or 1e-6 <= abs(value) < 1e21:
        return format(Decimal(repr(value)).normalize(), "f")
    mantissa, _, exp = f"{value!r}".partition("e")
    return f"{mantissa.removesuffix('.0')}e{'-' if exp.startswith('-') else '+'}{int(exp.lstrip('+-'))}"


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028",
                 "\u2029": "\\u2029"}
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _json_string(text: str, escape_html: bool) -> str:
    out = []
    for c in text:
        if c in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[c])
        elif escape_html and c in _HTML_ESCAPES:
            out.append(_HTML_ESCAPES[c])
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, empty string/slice/map are false; structs are true."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, (GoStruct, Stringer)):
        return True
    if isinstance(value, (bool, int, float, str, list, dict, tuple)):
        return bool(value)
    return True
