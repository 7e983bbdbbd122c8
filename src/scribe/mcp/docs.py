"""A project's documents: created from templates, read and edited section by section.

Documents are named by key, case-insensitively: ``architecture``, ``phase_plan``,
``checklist`` and ``progress_log``, each with aliases (``arch``, ``plan``, ``todo``,
``log``, its file name...) and any more the configuration adds.

Sections (``patch`` says how they are found) are read, replaced or appended to; a
whole document is changed with a unified diff against the content whose sha256
the caller names.

Every change is journaled (``DOC_CHANGED`` with both hashes and the unified diff)
before the compare-and-swap write, and made while holding the document's lock,
the same lock progress log appends take: an edit never loses an appended line and
an append never lands in a replaced file. Lines the edit does not touch keep their
bytes, line endings included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scribe.diffs import unified_diff
from scribe.errors import ContentChanged, FileBusy, OutsideRoot, ScribeError, Skipped
from scribe.files import TextFile, hash_file, read_text, sha256
from scribe.journal.entry import DOC_CHANGED, FILE_READ, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.mcp import templates
from scribe.mcp.context import Call
from scribe.mcp.failures import (
    BUSY,
    CONFLICT,
    INVALID_ARGUMENT,
    NOT_FOUND,
    SCOPE_VIOLATION,
    ToolFailure,
)
from scribe.mcp.patch import (
    Section,
    apply,
    edit_section,
    find_section,
    join_lines,
    no_section,
    sections,
    split_lines,
)
from scribe.mcp.projects import Projects, inside, locked
from scribe.undo import write_journaled

#: Each document's key and file name.
DOCS: Mapping[str, str] = dict(
    zip(("architecture", "phase_plan", "checklist", "progress_log"), templates.FILES, strict=True)
)
ALIASES: Mapping[str, str] = {
    "architecture_guide": "architecture",
    "arch": "architecture",
    "phases": "phase_plan",
    "plan": "phase_plan",
    "todo": "checklist",
    "progress": "progress_log",
    "log": "progress_log",
    **{name.lower(): key for key, name in DOCS.items()},
}
ACTIONS = ("read", "replace_section", "append_section", "apply_patch")


def _key(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


class Docs:
    """The documents of the projects of the repository at ``root``.

    ``aliases`` maps more names (from configuration) to the documents' keys.
    """

    def __init__(
        self,
        root: Path,
        journal: JournalWriter,
        projects: Projects,
        *,
        aliases: Mapping[str, str] | None = None,
        lock_timeout: float = 2.0,
    ) -> None:
        self.root = root.resolve()
        self.journal = journal
        self.projects = projects
        self.lock_timeout = lock_timeout
        self.aliases = {**{key: key for key in DOCS}, **ALIASES}
        for alias, target in (aliases or {}).items():
            canonical = self.aliases.get(_key(target))
            if canonical is None:
                raise ScribeError(
                    f"doc alias {alias!r} names {target!r}, which is not a document; "
                    f"documents: {', '.join(DOCS)}"
                )
            taken = self.aliases.get(_key(alias))
            if taken is not None and taken != canonical:
                raise ScribeError(f"doc alias {alias!r} already names {taken!r}")
            self.aliases[_key(alias)] = canonical

    def doc_key(self, name: str) -> str:
        """The canonical key ``name`` stands for; ``NOT_FOUND`` lists the known keys."""
        key = self.aliases.get(_key(name))
        if key is None:
            names = sorted(set(self.aliases) - set(DOCS))
            raise ToolFailure(
                NOT_FOUND,
                f"no document {name!r}; documents: {', '.join(DOCS)} "
                f"(also known as {', '.join(names)})",
                known=list(DOCS),
                aliases=names,
            )
        return key

    def generate_doc_templates(self, call: Call, *, project: str) -> dict[str, Any]:
        """Create the project's four documents from the templates, keeping any that
        exist; each created one is journaled."""
        found = self.projects.get_project(project)
        created, kept, seqs = [], [], {}
        today = datetime.now(UTC).date()
        for key, filename in DOCS.items():
            rel = found["docs_dir"] + filename
            text = templates.render(filename, project=found["name"], slug=found["slug"], day=today)
            seq = templates.create_doc(
                call, self.journal, self.root, rel, text, project=found["name"], doc=key
            )
            if seq is None:
                kept.append(rel)
            else:
                created.append(rel)
                seqs[rel] = seq
        return {
            "project": found["name"],
            "docs_dir": found["docs_dir"],
            "created": created,
            "kept": kept,
            "seqs": seqs,
        }

    def manage_docs(
        self,
        call: Call,
        *,
        project: str,
        doc: str,
        action: str,
        section: str | None = None,
        content: str | None = None,
        patch: str | None = None,
        expected_sha256: str | None = None,
    ) -> dict[str, Any]:
        """Read a document, or change it by section or by unified diff (see the module
        docstring). Changes return ``outcome``, ``changed``, ``seq`` and both hashes."""
        if action not in ACTIONS:
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"unknown action {action!r}; use one of {', '.join(ACTIONS)}",
                argument="action",
                allowed=list(ACTIONS),
            )
        _check_arguments(
            action, section=section, content=content, patch=patch, expected_sha256=expected_sha256
        )
        found = self.projects.get_project(project)
        key = self.doc_key(doc)
        rel = found["docs_dir"] + DOCS[key]
        head = {"project": found["name"], "doc": key, "path": rel, "action": action}
        if action == "read":
            return {**head, **self._read(call, rel, key, found["name"], section)}
        try:
            with locked(inside(self.root, rel), rel, self.lock_timeout):
                return {
                    **head,
                    **self._change(call, head, section, content, patch, expected_sha256),
                }
        except FileNotFoundError:
            raise _missing(rel) from None

    def _load(self, rel: str) -> TextFile:
        try:
            return read_text(self.root, rel)
        except FileNotFoundError:
            raise _missing(rel) from None
        except OutsideRoot as exc:
            raise ToolFailure(SCOPE_VIOLATION, f"{rel}: {exc}", path=rel) from None
        except Skipped as exc:
            raise ToolFailure(
                INVALID_ARGUMENT, f"{rel} cannot be edited: {exc}", path=rel
            ) from None

    def _read(
        self, call: Call, rel: str, key: str, project: str, section: str | None
    ) -> dict[str, Any]:
        file = self._load(rel)
        lines = [text for text, _ in split_lines(file.text)]
        found = sections(lines)
        answer: dict[str, Any] = {
            "text": file.text,
            "sha256": file.sha256,
            "sections": [s.describe() for s in found],
        }
        if section is not None:
            chosen = find_section(found, section)
            if chosen is None:
                raise no_section(section, found)
            answer["section"] = chosen.describe()
            answer["section_text"] = join_lines(
                split_lines(file.text)[chosen.line : chosen.end], "\n"
            )
        self.journal.submit(
            [
                NewEntry(
                    FILE_READ,
                    call.context.actor,
                    path=rel,
                    payload=call.payload(
                        project=project,
                        doc=key,
                        action="read",
                        sha256=file.sha256,
                        size=len(file.raw),
                        section=section,
                    ),
                )
            ]
        )
        return answer

    def _change(
        self,
        call: Call,
        head: Mapping[str, str],
        section: str | None,
        content: str | None,
        diff: str | None,
        expected: str | None,
    ) -> dict[str, Any]:
        rel, action = head["path"], head["action"]
        file = self._load(rel)
        if expected is not None and expected.lower() != file.sha256:
            raise ToolFailure(
                CONFLICT,
                f"{rel} has changed: its sha256 is {file.sha256}, not {expected}; "
                "read it again and redo the change",
                current_sha256=file.sha256,
            )
        where: Section | None = None
        if action == "apply_patch":
            assert diff is not None
            text, outcome = apply(file.text, diff), "patched"
        else:
            assert section is not None
            assert content is not None
            append = action == "append_section"
            text, outcome, where = edit_section(file.text, section, content, append=append)
        data = file.encode(text)
        answer: dict[str, Any] = {"before_sha256": file.sha256, "sha256": sha256(data)}
        if data == file.raw:
            return {**answer, "outcome": "unchanged", "changed": False, "seq": None}
        if where is not None:
            answer["section"] = where.describe()
        intent = NewEntry(
            DOC_CHANGED,
            call.context.actor,
            path=rel,
            before_hash=file.sha256,
            after_hash=answer["sha256"],
            diff=unified_diff(rel, file.text, text),
            message=f"{action} {head['doc']}" + (f": {section.strip()}" if section else ""),
            payload=call.payload(
                project=head["project"],
                doc=head["doc"],
                action=action,
                outcome=outcome,
                **({"section": section} if section else {}),
            ),
        )
        try:
            sealed = write_journaled(file, data, intent, self.journal)
        except ContentChanged:
            current = hash_file(file.path)
            raise ToolFailure(
                CONFLICT,
                f"{rel} changed while it was being written; nothing was changed, read it again",
                current_sha256=current,
            ) from None
        except FileBusy as exc:
            raise ToolFailure(BUSY, f"{exc}; nothing was changed, try again", path=rel) from None
        assert sealed is not None
        return {**answer, "outcome": outcome, "changed": True, "seq": sealed.seq}


def _check_arguments(action: str, **given: str | None) -> None:
    needed = {
        "read": (),
        "replace_section": ("section", "content"),
        "append_section": ("section", "content"),
        "apply_patch": ("patch", "expected_sha256"),
    }[action]
    allowed = {
        "read": ("section",),
        "replace_section": ("section", "content", "expected_sha256"),
        "append_section": ("section", "content", "expected_sha256"),
        "apply_patch": ("patch", "expected_sha256"),
    }[action]
    missing = [name for name in needed if given[name] is None]
    if missing:
        raise ToolFailure(
            INVALID_ARGUMENT,
            f"{action} needs {' and '.join(missing)}",
            argument=missing[0],
        )
    extra = [name for name, value in given.items() if value is not None and name not in allowed]
    if extra:
        raise ToolFailure(
            INVALID_ARGUMENT, f"{action} does not take {' or '.join(extra)}", argument=extra[0]
        )


def _missing(rel: str) -> ToolFailure:
    return ToolFailure(
        NOT_FOUND, f"{rel} does not exist; call generate_doc_templates first", path=rel
    )
