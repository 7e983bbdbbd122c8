"""Plug-in manifests: what is filled in, what is refused, and the published schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import scribe.actions.manifest
from scribe.actions import Content, FileContext
from scribe.actions.manifest import (
    Manifest,
    ManifestError,
    Permissions,
    manifest_for,
    manifest_schema,
    read_manifest,
)
from scribe.errors import ScribeError

SCHEMA_FILE = Path(__file__).parent.parent / "docs" / "plugin-manifest.schema.json"
REGENERATE_SCHEMA = (
    "python -c 'import json; from scribe.actions.manifest import manifest_schema; "
    "print(json.dumps(manifest_schema(), indent=2))' > docs/plugin-manifest.schema.json"
)
HMA = {"hma_version": "2.2", "tier_classification": "plugin", "boundary_interfaces": ["files"]}


class ShoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: int = 1


def _shout(file: FileContext, params: ShoutParams) -> str:
    return file.text.upper()


SHOUT = Content("shout", ShoutParams, _shout, "Upper-case the whole file.")


def problems(data: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        manifest_for(SHOUT, data, version="1.0")
    return str(caught.value).splitlines()


def test_the_published_schema_is_the_generated_one() -> None:
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == manifest_schema(), f"the schema is stale; run: {REGENERATE_SCHEMA}"


def test_the_schema_is_2020_12_titled_and_identified() -> None:
    schema = manifest_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:scribe:schema:plugin-manifest"
    assert schema["title"] == "Scribe plug-in manifest"


def test_the_schema_accepts_what_scribe_accepts_and_refuses_what_it_refuses() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(manifest_schema())
    full = manifest_for(SHOUT, {"permissions": {"write": ["**/*.md"]}}, version="1.0").to_json()
    assert list(validator.iter_errors(full)) == []
    assert list(validator.iter_errors({})) == []  # everything left out is filled in
    hma = {"manifest_version": "2.2", "hma_compliance": HMA}
    assert list(validator.iter_errors(hma)) == []
    refused: tuple[dict[str, Any], ...] = (
        {"manifest_version": "2.2"},
        {"hma_compliance": HMA},
        {"permissions": {"network": "all"}},
        {"name": "Shout"},
        {"permisions": {}},
    )
    for data in refused:
        assert list(validator.iter_errors(data)), data


def test_what_the_plugin_leaves_out_is_filled_from_the_action() -> None:
    manifest = manifest_for(SHOUT, {}, version="2.1.0")
    assert manifest.name == "shout"
    assert manifest.version == "2.1.0"
    assert manifest.description == "Upper-case the whole file."
    assert manifest.parameters == ShoutParams.model_json_schema()
    assert manifest.manifest_version == "1"
    assert manifest.permissions == Permissions(write=[], commands=[], network="none")
    assert manifest.hma_compliance is None


def test_what_the_plugin_gives_is_kept() -> None:
    manifest = manifest_for(
        SHOUT,
        {
            "version": "0.3rc1",
            "description": "Shouts.",
            "permissions": {"write": ["notes/**/*.md", "!notes/private/"], "commands": ["/bin/x"]},
        },
        version="9.9",
    )
    assert manifest.version == "0.3rc1"
    assert manifest.description == "Shouts."
    assert manifest.permissions.write == ["notes/**/*.md", "!notes/private/"]
    assert manifest.permissions.commands == ["/bin/x"]


def test_a_manifest_object_is_accepted_and_its_json_round_trips() -> None:
    built = manifest_for(SHOUT, {"permissions": {"write": ["*.md"]}}, version="1.0")
    assert manifest_for(SHOUT, built, version="5") == built
    as_file = json.loads(json.dumps(built.to_json()))
    assert "hma_compliance" not in as_file
    assert manifest_for(SHOUT, as_file, version="5") == built


def test_a_22_manifest_with_hma_compliance_is_accepted() -> None:
    manifest = manifest_for(SHOUT, {"manifest_version": "2.2", "hma_compliance": HMA}, version="1")
    assert manifest.hma_compliance is not None
    assert manifest.hma_compliance.boundary_interfaces == ["files"]
    assert manifest.to_json()["hma_compliance"] == HMA


def test_no_manifest_is_refused_with_how_to_give_one() -> None:
    assert problems(None) == [
        "no manifest: give the action (or its module) a `manifest` dict, "
        "or ship a manifest.json beside it"
    ]


def test_a_manifest_that_is_not_a_mapping_is_refused() -> None:
    assert problems(["write"]) == ["manifest: expected a mapping, got list"]


def test_a_name_other_than_the_actions_is_refused() -> None:
    assert problems({"name": "whisper"}) == [
        "name: 'whisper' differs from the action's name 'shout'"
    ]


def test_an_action_name_that_rules_cannot_use_is_refused() -> None:
    bad = Content("Shout-Loud", ShoutParams, _shout, "Shouts.")
    with pytest.raises(ManifestError, match=r"^name: String should match pattern"):
        manifest_for(bad, {}, version="1")
    long = Content("s" * 65, ShoutParams, _shout, "Shouts.")
    with pytest.raises(ManifestError, match=r"^name: String should have at most 64 characters"):
        manifest_for(long, {}, version="1")


def test_parameters_that_differ_from_the_model_are_refused_with_the_fix() -> None:
    stale = {"parameters": {"type": "object", "properties": {"count": {"type": "integer"}}}}
    with pytest.raises(ManifestError) as caught:
        manifest_for(SHOUT, stale, version="1.0")
    assert str(caught.value) == (
        "parameters: differ from the action's params model; "
        "regenerate with `scribe plugins show shout --json`"
    )
    # The fix is at hand: the same manifest with the parameters regenerated.
    regenerated = caught.value.regenerated
    assert regenerated is not None
    assert regenerated.parameters == ShoutParams.model_json_schema()


def test_stale_parameters_with_other_problems_offer_no_regenerated_manifest() -> None:
    with pytest.raises(ManifestError) as caught:
        manifest_for(SHOUT, {"parameters": {}, "version": "one"}, version="1.0")
    assert caught.value.regenerated is None
    assert len(caught.value.problems) == 2


def test_22_without_hma_compliance_is_refused() -> None:
    assert problems({"manifest_version": "2.2"}) == [
        "hma_compliance: required when manifest_version is '2.2'"
    ]


def test_hma_compliance_outside_22_is_refused() -> None:
    assert problems({"hma_compliance": HMA}) == [
        "hma_compliance: only allowed when manifest_version is '2.2'"
    ]


def test_hma_compliance_needs_every_field_and_an_interface() -> None:
    assert problems(
        {
            "manifest_version": "2.2",
            "hma_compliance": {
                "hma_version": "2.2",
                "tier_classification": " ",
                "boundary_interfaces": [],
            },
        }
    ) == [
        "hma_compliance.tier_classification: String should match pattern '\\S'",
        "hma_compliance.boundary_interfaces: List should have at least 1 item after "
        "validation, not 0",
    ]


def test_an_unknown_manifest_version_is_refused() -> None:
    assert problems({"manifest_version": "2"}) == ["manifest_version: Input should be '1' or '2.2'"]


def test_network_other_than_none_is_refused() -> None:
    assert problems({"permissions": {"network": "full"}}) == [
        "permissions.network: Input should be 'none'"
    ]


def test_a_version_that_is_not_pep_440_is_refused() -> None:
    assert problems({"version": "v1.0-final-final"}) == [
        "version: 'v1.0-final-final' is not a PEP 440 version (such as 1.0, 2.1.3 or 2.1.0rc1)"
    ]


def test_write_globs_stay_inside_the_repository_and_must_compile() -> None:
    assert problems({"permissions": {"write": ["docs/*.md", "../elsewhere/*", "", "[z-a]"]}}) == [
        "permissions.write[1]: '../elsewhere/*' climbs out with '..'; globs stay inside the root",
        "permissions.write[2]: a glob cannot be empty",
        "permissions.write[3]: '[z-a]' is not a valid glob: bad character range z-a",
    ]


def test_commands_are_absolute_paths() -> None:
    assert problems({"permissions": {"commands": ["git", "/usr/bin/../bin/sh"]}}) == [
        "permissions.commands[0]: 'git' is not an absolute path (such as /usr/bin/git)",
        "permissions.commands[1]: '/usr/bin/../bin/sh' contains '..'; give the executable's own path",
    ]


def test_unknown_keys_are_refused_with_the_closest_name() -> None:
    assert problems({"permisions": {"write": []}, "permissions": {"comands": []}}) == [
        "permissions.comands: unknown key; did you mean 'commands'?",
        "permisions: unknown key; did you mean 'permissions'?",
    ]


def test_every_problem_is_listed_at_once() -> None:
    listed = problems(
        {
            "name": "other",
            "version": "x",
            "description": "",
            "permissions": {"network": "all"},
            "extra": 1,
        }
    )
    assert [line.split(":")[0] for line in listed] == [
        "name",
        "version",
        "description",
        "permissions.network",
        "extra",
    ]


def test_a_manifest_error_is_a_scribe_config_error() -> None:
    error = ManifestError(["a: b"])
    assert isinstance(error, ScribeError)
    assert error.exit_code == 2


def test_read_manifest_reads_a_json_object_and_says_where_it_is_not(tmp_path: Path) -> None:
    good = tmp_path / "manifest.json"
    good.write_text('{"description": "Shouts."}', encoding="utf-8")
    assert read_manifest(good) == {"description": "Shouts."}
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "description": "Shouts.",\n}', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"^broken.json:3:1: invalid JSON: "):
        read_manifest(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"^list.json: expected a JSON object, got list$"):
        read_manifest(listed)


def test_manifests_are_frozen() -> None:
    manifest = manifest_for(SHOUT, {}, version="1")
    with pytest.raises(ValueError, match="frozen"):
        manifest.name = "other"  # type: ignore[misc]
    assert isinstance(manifest, Manifest)


def test_public_surface_is_pinned() -> None:
    assert scribe.actions.manifest.__all__ == [
        "HmaCompliance",
        "Manifest",
        "ManifestError",
        "Permissions",
        "manifest_for",
        "manifest_schema",
        "read_manifest",
    ]
