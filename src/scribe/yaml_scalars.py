"""One YAML scalar on one line: how Scribe reads values and writes them back.

Frontmatter is read with YAML 1.2 core resolution (``no`` and ``on`` stay text), and
a value is written the way a person would type it: plain when every common reader
(YAML 1.2, and 1.1 as PyYAML and many site generators read it) gets the same value
back, quoted otherwise.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import yaml


class Loader(yaml.CSafeLoader):
    """libyaml with YAML 1.2 core resolution: ``no``/``on`` stay strings, ``1:20`` too."""


Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)


def _construct_int(loader: Loader, node: yaml.ScalarNode) -> int:
    # YAML 1.2 core: a leading zero is decimal (PyYAML's 1.1 constructor reads it as
    # octal, and raised ValueError on ``08``).
    text = str(loader.construct_scalar(node))
    try:
        return int(text, 16) if text.startswith("0x") else int(text, 10)
    except ValueError:  # explicitly tagged (``!!int 0b101``): as YAML 1.1 reads it
        return int(yaml.constructor.SafeConstructor.construct_yaml_int(loader, node))


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def same(a: Any, b: Any) -> bool:
    """Equal data, types included (``1`` is not ``True``); NaN equals NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and bool(a == b)


class YamlText(str):
    """Text meant as a YAML scalar, as a template renders it: written plain when YAML
    reads that back as one scalar of that text, so ``2024-05-01`` stays a date and
    ``3`` a number. A plain ``str`` is always written so that it reads back a string."""

    __slots__ = ()


def render_value(value: Any, *, quote: str | None = None, flow: bool = False) -> str:
    """One-line YAML for ``value``, written the way a person would type it.

    A string stays plain when YAML reads it back as the same string (both YAML 1.2,
    as Scribe reads it, and YAML 1.1, as PyYAML and many site generators do: ``no``
    and ``2024-05-01`` get quoted), otherwise it is quoted (in ``quote`` style when
    the value it replaces was quoted).
    """
    if isinstance(value, str):
        if quote == '"' or _needs_double_quotes(value):
            return _double_quoted(value)
        if quote == "'" or not _is_plain_safe(value, flow=flow, typed=isinstance(value, YamlText)):
            return "'" + value.replace("'", "''") + "'"
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = (
            f"{render_value(k, flow=True)}: {render_value(v, flow=True)}" for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Iterable):
        return "[" + ", ".join(render_value(v, flow=True) for v in value) + "]"
    return render_value(str(value))


# Characters YAML cannot hold as they are (not printable, or line breaks that would
# be folded: NEL, LS, PS) and a BOM, which libyaml skips at the start of a line.
_UNQUOTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _needs_double_quotes(value: str) -> bool:
    return _UNQUOTABLE.search(value) is not None


def _double_quoted(value: str) -> str:
    """A double-quoted YAML scalar; JSON's escapes are YAML's, plus a few it leaves raw."""
    return _UNQUOTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(value, ensure_ascii=False))


# In [flow, lists] PyYAML ends a plain scalar at '?' and ':' too (libyaml does not).
_FLOW_UNSAFE = re.compile(r"[\[\]{},?:]")


_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[-+]\d\d:\d\d)?)?\Z")


def _valid_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _is_plain_safe(value: str, *, flow: bool, typed: bool = False) -> bool:
    """True when ``value`` written plain reads back as that string (``typed``: as a
    plain scalar of that exact text which YAML 1.2 and 1.1 resolve alike)."""
    if not value or value != value.strip() or (flow and _FLOW_UNSAFE.search(value)):
        return False
    if _ISO_TIME.match(value) and _valid_time(value):
        # The stamp case, on every rewrite: YAML 1.2 and 1.1 both read a date or
        # time, so it is plain exactly when a typed value is wanted.
        return typed
    document = f"k: [{value}]\n" if flow else f"k: {value}\n"
    try:
        node = yaml.compose(document, Loader=Loader)
        ours = yaml.load(document, Loader=Loader)
        theirs = yaml.load(document, Loader=yaml.CSafeLoader)  # YAML 1.1: yes/no are booleans
    except (yaml.YAMLError, ValueError):  # ValueError: a date that does not exist
        return False
    if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
        return False
    scalar = node.value[0][1]
    if flow:
        if not isinstance(scalar, yaml.SequenceNode) or len(scalar.value) != 1:
            return False
        scalar, ours, theirs = scalar.value[0], ours["k"][0], theirs["k"][0]
    else:
        ours, theirs = ours["k"], theirs["k"]
    if not isinstance(scalar, yaml.ScalarNode) or scalar.style or scalar.value != value:
        return False
    return same(ours, theirs) if typed else same(ours, value) and same(theirs, value)


@functools.lru_cache(maxsize=1024)
def render_key(key: str) -> str:
    """A key as a person would type it, double-quoted when plain would misread as a key."""
    rendered = render_value(key)
    try:
        ok = yaml.load(f"{rendered}: v\n", Loader=Loader) == {key: "v"}
    except yaml.YAMLError:
        ok = False
    return rendered if ok else _double_quoted(key)
