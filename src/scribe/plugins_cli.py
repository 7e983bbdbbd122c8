"""``scribe plugins``: list, show and create plug-in actions, and print the manifest schema.

Exit codes: 0 success; 1 the plug-in asked for was refused, or a package could
not be made; 2 no such plug-in, or invalid settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scribe.config import load_settings
from scribe.errors import ScribeError

if TYPE_CHECKING:  # the actions load with the commands, not with every `scribe` run
    from scribe.actions.manifest import Manifest
    from scribe.actions.registry import Plugin, Registry

app = typer.Typer(
    name="plugins",
    help="List, show and create plug-in actions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

RootOption = Annotated[
    Path,
    typer.Option(
        "--root",
        help="Repository root (default: the current directory).",
        exists=True,
        file_okay=False,
    ),
]
LocalOption = Annotated[
    bool | None,
    typer.Option(
        "--local/--no-local",
        help="Also load the repository's .scribe/actions/*.py, which runs their code "
        "(default: the plugins_local setting).",
        show_default=False,
    ),
]


def _registry(root: Path, local: bool | None) -> Registry:
    base = root.resolve()
    try:
        wanted = load_settings(base).plugins_local if local is None else local
    except ScribeError as exc:
        _fail(exc)
    from scribe.actions.registry import load_registry

    return load_registry(base, local=wanted)


def _fail(exc: ScribeError) -> NoReturn:
    err.print(Text(str(exc), style="red"))
    raise typer.Exit(exc.exit_code)


@app.command("list")
def list_command(
    root: RootOption = Path("."),
    local: LocalOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Every action rules may use, then the refused plug-ins and why."""
    registry = _registry(root, local)
    if as_json:
        report = {
            "plugins": [_summary(p, registry) for p in registry.plugins.values()],
            "refused": [
                {"name": r.name, "origin": r.origin, "reason": r.reason} for r in registry.refused
            ],
        }
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table("name", "kind", "version", "origin", "permissions", box=None)
    for plugin in registry.plugins.values():
        table.add_row(
            plugin.manifest.name,
            plugin.kind,
            plugin.manifest.version,
            plugin.origin,
            _permissions(plugin),
        )
    out.print(table)
    if registry.refused:
        refused = Table("refused", "origin", "reason", box=None)
        for r in registry.refused:
            refused.add_row(Text(r.name, style="red"), r.origin, r.reason)
        out.print()
        out.print(refused)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The action's name.")],
    root: RootOption = Path("."),
    local: LocalOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Exactly the manifest JSON (for manifest.json).")
    ] = False,
) -> None:
    """A plug-in's manifest: version, parameters and permissions."""
    registry = _registry(root, local)
    plugin = registry.get(name)
    if plugin is not None:
        if as_json:
            typer.echo(json.dumps(plugin.manifest.to_json(), indent=2))
        else:
            _print_manifest(plugin)
        return
    refused = registry.refusal(name)
    if refused is None:
        known = [*registry.plugins, *(r.name for r in registry.refused)]
        from scribe.rules.load import suggest

        err.print(Text(f"no action named {name!r}{suggest(name, known)}", style="red"))
        raise typer.Exit(2)
    if as_json and refused.regenerated is not None:
        # Stale parameters were its only fault: print the manifest that fixes it.
        typer.echo(json.dumps(refused.regenerated.to_json(), indent=2))
    err.print(Text(f"{name} ({refused.origin}) was refused: {refused.reason}", style="red"))
    raise typer.Exit(1)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The action's name (lower case, digits, '_').")],
    dest: Annotated[
        Path, typer.Option("--dest", help="Where to put the package (default: here).")
    ] = Path("."),
    root: RootOption = Path("."),
    local: LocalOption = None,
) -> None:
    """Create a plug-in package, scribe-NAME, with an example action and its tests."""
    taken = _registry(root, local).get(name)
    if taken is not None and not taken.builtin:
        message = f"an action named {name!r} is already installed ({taken.origin})"
        err.print(Text(message, style="red"))
        raise typer.Exit(1)
    from scribe.actions.scaffold import scaffold_plugin

    try:
        made = scaffold_plugin(name, dest)
    except ScribeError as exc:
        _fail(exc)
    package = dest / f"scribe-{name}"
    out.print(f"Created {package}:", markup=False)
    for path in made:
        out.print(f"  {path.relative_to(package).as_posix()}", markup=False)
    out.print("Next steps:", markup=False)
    for step in (
        f"cd {package}",
        "pip install -e '.[test]'   # into the environment Scribe runs in",
        "python -m pytest",
        f"scribe plugins show {name}",
    ):
        out.print(f"  {step}", markup=False)


@app.command()
def schema() -> None:
    """The JSON Schema of a plug-in's manifest.json (for editors)."""
    from scribe.actions.manifest import manifest_schema

    typer.echo(json.dumps(manifest_schema(), indent=2))


def _summary(plugin: Plugin, registry: Registry) -> dict[str, Any]:
    permissions = registry.permissions(plugin.manifest.name)
    return {
        "name": plugin.manifest.name,
        "kind": plugin.kind,
        "version": plugin.manifest.version,
        "origin": plugin.origin,
        "builtin": plugin.builtin,
        "description": plugin.manifest.description,
        "permissions": None if permissions is None else permissions.model_dump(mode="json"),
    }


def _permissions(plugin: Plugin) -> str:
    if plugin.builtin:
        return "engine-confined"
    granted = plugin.manifest.permissions
    parts = []
    if granted.write:
        parts.append("write " + ", ".join(granted.write))
    if granted.commands:
        parts.append("run " + ", ".join(granted.commands))
    return "; ".join(parts) or "none"


def _print_manifest(plugin: Plugin) -> None:
    manifest = plugin.manifest
    out.print(Text.assemble((manifest.name, "bold"), f" {manifest.version}"))
    out.print(f"{plugin.kind} action, {plugin.origin}", markup=False)
    out.print(manifest.description, markup=False)
    out.print()
    out.print(_parameters(manifest))
    out.print()
    table = Table("permission", "granted", box=None)
    if plugin.builtin:
        table.add_row("all", "trusted; confined by the engine like every action")
    else:
        granted = manifest.permissions
        table.add_row("write", ", ".join(granted.write) or "none")
        table.add_row("commands", ", ".join(granted.commands) or "none")
        table.add_row("network", granted.network)
    out.print(table)
    if manifest.hma_compliance is not None:
        hma = manifest.hma_compliance
        out.print()
        out.print(f"HMA {hma.hma_version}, tier {hma.tier_classification}", markup=False)
        out.print(f"boundary interfaces: {', '.join(hma.boundary_interfaces)}", markup=False)


def _parameters(manifest: Manifest) -> Table | Text:
    properties: dict[str, Any] = manifest.parameters.get("properties", {})
    if not properties:
        return Text("no parameters")
    required = set(manifest.parameters.get("required", []))
    table = Table("parameter", "type", "required", "default", "description", box=None)
    for key, prop in properties.items():
        table.add_row(
            key,
            _type_of(prop),
            "yes" if key in required else "",
            json.dumps(prop["default"]) if "default" in prop else "",
            prop.get("description", ""),
        )
    return table


def _type_of(prop: dict[str, Any]) -> str:
    if "type" in prop:
        kind = prop["type"]
        return " | ".join(kind) if isinstance(kind, list) else str(kind)
    if "$ref" in prop:
        return str(prop["$ref"]).rpartition("/")[2]
    for union in ("anyOf", "oneOf"):
        if union in prop:
            return " | ".join(_type_of(p) for p in prop[union])
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    return "any"


__all__ = ["app"]
