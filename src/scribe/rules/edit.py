"""Edit a rules file in place: one line changes (or one is added), the rest stays
byte for byte, comments included."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from scribe.errors import ScribeError
from scribe.rules.load import suggest

_SCALAR = re.compile(r"[^\s#,}\]]+")


class RuleEditError(ScribeError):
    """The rules file cannot be edited as asked (unknown rule, unusual layout)."""


def set_enabled(text: str, rule_id: str, enabled: bool) -> str:
    """``text`` with rule ``rule_id``'s ``enabled`` set (unchanged if it already is)."""
    rule = _find(text, rule_id)
    value = "true" if enabled else "false"
    lines = text.splitlines(keepends=True)
    if "enabled" in rule:
        line, col = rule.lc.value("enabled")
        current = lines[line]
        token = _SCALAR.match(current, col)
        if token is None:
            raise RuleEditError(f"rule {rule_id!r}: 'enabled' has no value to replace")
        lines[line] = current[:col] + value + current[token.end() :]
        return "".join(lines)
    if enabled:  # a rule without the key is enabled already
        return text
    line, col = rule.lc.key("id")
    newline = "\r\n" if "\r\n" in text else "\n"
    if not lines[line].endswith(("\n", "\r")):
        lines[line] += newline
    lines.insert(line + 1, " " * col + f"enabled: {value}" + newline)
    return "".join(lines)


def _find(text: str, rule_id: str) -> Any:
    try:
        document = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise RuleEditError(f"the rules file is not valid YAML: {exc}") from None
    rules = document.get("rules") if isinstance(document, CommentedMap) else None
    ids: list[str] = []
    for rule in rules or []:
        if isinstance(rule, CommentedMap) and "id" in rule:
            if str(rule["id"]) == rule_id:
                if rule.fa.flow_style():
                    raise RuleEditError(
                        f"rule {rule_id!r} is written in flow style ({{...}}); edit it by hand"
                    )
                return rule
            ids.append(str(rule["id"]))
    raise RuleEditError(f"no rule with id {rule_id!r}{suggest(rule_id, ids)}")
