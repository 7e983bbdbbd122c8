"""Load a rules file; every problem names file, line, column and key path.

The file is read with ruamel.yaml in round-trip mode only to know where each key
and value sits; validation is the pydantic model's. Problems are collected for the
whole file, so one run reports every mistake, each with the closest valid name.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from scribe.actions import ACTIONS, Action
from scribe.errors import ConfigError, Problem
from scribe.rules.match import CompiledRule, Permits, compile_rule
from scribe.rules.model import rules_model, rules_schema
from scribe.rules.templates import Template


def load_rules(
    path: Path,
    *,
    actions: Mapping[str, Action] = ACTIONS,
    permissions: Callable[[str], Permits | None] = lambda _name: None,
    refusals: Mapping[str, str] | None = None,
    display: str | None = None,
) -> list[CompiledRule]:
    """Read, validate and compile the rules at ``path``, in the order they run.

    Raises ``ConfigError`` listing every problem. ``display`` is the file name
    used in messages (defaults to ``path``).
    """
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(name, 1, 1, "", "rules file not found (create one with `scribe init`)")]
        ) from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise ConfigError([Problem(name, 1, 1, "", f"cannot read rules file: {exc}")]) from None
    return parse_rules(text, name, actions=actions, permissions=permissions, refusals=refusals)


def parse_rules(
    text: str,
    name: str,
    *,
    actions: Mapping[str, Action] = ACTIONS,
    permissions: Callable[[str], Permits | None] = lambda _name: None,
    refusals: Mapping[str, str] | None = None,
) -> list[CompiledRule]:
    """Validate and compile rules from YAML text (see ``load_rules``). ``permissions``
    gives a plug-in's declared permissions by action name; ``refusals`` the reasons
    plug-ins were refused, told when a rule names one."""
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(
            [Problem(name, line, col, "", f"invalid YAML: {exc.problem or exc.context}")]
        ) from None
    if document is None:
        document = CommentedMap()
    model = rules_model(actions)
    try:
        parsed = model.model_validate(_plain(document))
    except ValidationError as exc:
        problems = [_problem(err, document, name, actions, refusals or {}) for err in exc.errors()]
        raise ConfigError(sorted(_dedupe(problems), key=lambda p: (p.line, p.column))) from None
    rules: list[Any] = list(getattr(parsed, "rules", []))
    problems = _duplicate_ids(rules, document, name)
    if problems:
        raise ConfigError(problems)
    compiled = [compile_rule(rule, actions, permissions) for rule in rules]
    problems = _event_cycles(compiled, document, name)
    if problems:
        raise ConfigError(problems)
    order = sorted(range(len(compiled)), key=lambda i: (-compiled[i].priority, i))
    return [compiled[i] for i in order]


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (pydantic sees plain data)."""
    if isinstance(node, Mapping):
        return {
            str(k) if not isinstance(k, str | int | float | bool) else k: _plain(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _duplicate_ids(rules: list[Any], document: Any, name: str) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for index, rule in enumerate(rules):
        if rule.id in seen:
            line, col = position(document, ("rules", index, "id"), at_key=False)
            problems.append(
                Problem(
                    name,
                    line,
                    col,
                    f"rules[{index}].id",
                    f"duplicate rule id {rule.id!r} (first used by rules[{seen[rule.id]}])",
                )
            )
        seen.setdefault(rule.id, index)
    return problems


def _event_cycles(rules: Sequence[CompiledRule], document: Any, name: str) -> list[Problem]:
    """Rules that set each other off in a circle through events they emit.

    Only events named by fixed text can be followed here; a chain through a
    templated name is cut at run time by the depth limit instead.
    """
    emits: dict[int, list[tuple[int, str]]] = {}
    for index, rule in enumerate(rules):
        for number, step in enumerate(rule.steps):
            event = getattr(step.params, "event", None)
            if step.action.name == "emit" and isinstance(event, Template) and not event.compiled:
                emits.setdefault(index, []).append((number, event.source))
    listeners: dict[str, list[int]] = {}
    for index, rule in enumerate(rules):
        for event_name in rule.events:
            listeners.setdefault(event_name, []).append(index)

    def cycle_from(start: int) -> list[tuple[int, int, str]] | None:
        """A path of (rule, step, event) edges from ``start`` back to itself."""
        stack: list[tuple[int, list[tuple[int, int, str]]]] = [(start, [])]
        seen: set[int] = set()
        while stack:
            at, trail = stack.pop()
            for number, event_name in emits.get(at, []):
                for nxt in listeners.get(event_name, []):
                    edge = [*trail, (at, number, event_name)]
                    if nxt == start:
                        return edge
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append((nxt, edge))
        return None

    problems: list[Problem] = []
    reported: set[frozenset[int]] = set()
    for start in sorted(emits):
        cycle = cycle_from(start)
        if cycle is None or frozenset(r for r, _, _ in cycle) in reported:
            continue
        reported.add(frozenset(r for r, _, _ in cycle))
        route = " -> ".join(f"{rules[r].id} (emits {e})" for r, _, e in cycle)
        first, number, _ = cycle[0]
        loc = ("rules", first, "do", number, "emit", "event")
        line, col = position(document, loc, at_key=False)
        problems.append(
            Problem(
                name,
                line,
                col,
                _key_path(loc),
                f"events form a cycle: {route} -> {rules[first].id}; "
                "break it, or the chain would only stop at the depth limit",
            )
        )
    return problems


def _clean_loc(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """Drop the union tag pydantic repeats in a step's location (``do.0.set.set.field``)."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if (
            i + 1 < len(loc)
            and isinstance(part, str)
            and part == loc[i + 1]
            and out
            and isinstance(out[-1], int)
        ):
            continue
        out.append(part)
    return tuple(out)


def _key_path(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(
    err: ErrorDetails,
    document: Any,
    name: str,
    actions: Mapping[str, Action],
    refusals: Mapping[str, str],
) -> Problem:
    found = _located(err, document, name, actions, refusals)
    step = _step_named(err["loc"], document)
    return dataclasses.replace(found, message=f"{found.message} ({step})") if step else found


def _step_named(loc: Sequence[int | str], document: Any) -> str | None:
    """``rule 'ID', step N`` for a problem inside a step's parameters: the index
    path alone does not say which rule a long file means."""
    if len(loc) < 5 or loc[0] != "rules" or loc[2] != "do":
        return None
    rule, step = _child(_child(document, "rules"), loc[1]), loc[3]
    rule_id = _child(rule, "id")
    if not isinstance(step, int) or not isinstance(rule_id, str):
        return None
    return f"rule {rule_id!r}, step {step + 1}"


def _located(
    err: ErrorDetails,
    document: Any,
    name: str,
    actions: Mapping[str, Action],
    refusals: Mapping[str, str],
) -> Problem:
    loc = _clean_loc(err["loc"])
    kind = err["type"]
    message = err["msg"]
    at_key = False
    if kind == "extra_forbidden":
        at_key = True
        message = f"unknown key {loc[-1]!r}" + suggest(
            str(loc[-1]), _valid_keys(loc[:-1], document, actions)
        )
    elif kind == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag", "")
        if tag in refusals:
            message = f"action {tag!r} is a plug-in that was refused: {refusals[tag]}"
        else:
            message = (
                f"unknown action {tag!r}"
                + suggest(tag, list(actions))
                + f" (actions: {', '.join(actions)})"
            )
        loc = (*loc, tag)
        at_key = True
    elif kind == "union_tag_not_found":
        message = (
            "a step is a mapping with one key, the action name: e.g. `- set: {field: x, value: y}`"
        )
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}"
        loc_for_position = loc[:-1]
        line, col = position(document, loc_for_position, at_key=False)
        return Problem(name, line, col, _key_path(loc), message)
    elif kind == "enum":
        given = err.get("input")
        expected = str((err.get("ctx") or {}).get("expected", ""))
        options = [
            o.strip(" '") for o in expected.replace(" or ", ", ").split(",") if o.strip(" '")
        ]
        message = f"{given!r} is not one of {', '.join(options)}" + suggest(str(given), options)
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    line, col = position(document, loc, at_key=at_key)
    return Problem(name, line, col, _key_path(loc), message)


def suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _valid_keys(
    loc: Sequence[int | str], document: Any, actions: Mapping[str, Action]
) -> list[str]:
    """Keys the schema allows at ``loc``, found by walking the generated JSON Schema."""
    schema = rules_schema(actions)
    defs = schema.get("$defs", {})
    node: Any = schema
    value: Any = document
    for part in loc:
        node = _resolve(node, defs, value)
        if isinstance(part, int):
            node = node.get("items", {})
        elif "properties" in node and part in node["properties"]:
            node = node["properties"][part]
        else:
            node = node.get("additionalProperties", {})
        value = _child(value, part)
    node = _resolve(node, defs, value)
    return list(node.get("properties", {}))


def _resolve(node: Any, defs: Mapping[str, Any], value: Any) -> Any:
    """Follow $ref and pick the union member whose single key is present in ``value``."""
    for _ in range(10):
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in node or "oneOf" in node:
            options = [_resolve(o, defs, value) for o in node.get("anyOf", node.get("oneOf", []))]
            keys = set(value) if isinstance(value, Mapping) else set()
            chosen = [o for o in options if keys & set(o.get("properties", {}))]
            objects = [o for o in options if o.get("type") == "object" or "properties" in o]
            node = (chosen or objects or [{}])[0]
        else:
            return node
    return node


def _child(value: Any, part: int | str) -> Any:
    if isinstance(part, int) and isinstance(value, list) and part < len(value):
        return value[part]
    if isinstance(value, Mapping):
        return value.get(part)
    return None


def position(document: Any, loc: Sequence[int | str], *, at_key: bool) -> tuple[int, int]:
    """1-based line and column of the value (or key) at ``loc``, as close as the file allows."""
    node = document
    line, col = 0, 0
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            key_line, key_col = node.lc.key(part)
            value_line, value_col = node.lc.value(part)
            line, col = (key_line, key_col) if (last and at_key) else (value_line, value_col)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        else:
            break
    return line + 1, col + 1


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for p in problems:
        key = (p.line, p.column, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
