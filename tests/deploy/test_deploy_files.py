"""The deployment files under deploy/ (issue 17, item 1), checked with the tools that read
them where those are installed: the compose file against the Compose Specification's JSON
schema (tests/data/compose-spec.json), the systemd unit with `systemd-analyze`, the alert
rules with `promtool`, the image with a container builder. Each tool that is missing skips
only its own part, saying what is missing; what needs no tool (the hardening directives, a
non-root user everywhere, the metric names) is checked always."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "dublin-gateway.service"
CONTAINERFILE = DEPLOY / "Containerfile"
COMPOSE = DEPLOY / "compose.yaml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
HEALTHCHECK = DEPLOY / "healthcheck.py"
BIN = Path(sys.executable).parent

AUTHORITIES = ("BE-DU", "NL-DU")
BE_DU_NODES = ("be-du-1", "be-du-2")
GATEWAY_SERVICES = (*BE_DU_NODES, "nl-du")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- compose --------------------------------------------------------------------------------


def _compose_errors(document: Any) -> list[str]:
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with the default, as on a machine where VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_file_follows_the_compose_specification() -> None:
    compose = _yaml(COMPOSE)
    assert _compose_errors(compose) == []
    # The schema is strict enough to catch a misspelt key (so the check above can fail).
    compose["services"]["nl-du"]["read_onyl"] = True
    assert any("read_onyl" in e for e in _compose_errors(compose))


def test_compose_runs_two_authorities_and_two_nodes_of_one_sharing_postgresql() -> None:
    """README, several nodes: the same database_url (PostgreSQL) and one address for both."""
    services = _yaml(COMPOSE)["services"]
    assert set(services) == {"postgres", *GATEWAY_SERVICES}
    config_of = {
        name: next(
            v.split(":")[0]
            for v in services[name]["volumes"]
            if v.endswith(":/etc/dublin-gateway:ro")
        )
        for name in GATEWAY_SERVICES
    }
    assert config_of == {
        "be-du-1": "./demo/etc/BE-DU",
        "be-du-2": "./demo/etc/BE-DU",
        "nl-du": "./demo/etc/NL-DU",
    }
    aliases = {name: services[name]["networks"]["dublin"]["aliases"] for name in GATEWAY_SERVICES}
    assert aliases == {
        "be-du-1": ["be-du.dublin.test"],
        "be-du-2": ["be-du.dublin.test"],
        "nl-du": ["nl-du.dublin.test"],
    }
    for node in BE_DU_NODES:
        assert services[node]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[node]["environment"]["PGPASSFILE"] == "/run/secrets/pgpass"


def test_no_compose_service_runs_as_root_or_writes_its_root_file_system() -> None:
    for name, service in _yaml(COMPOSE)["services"].items():
        user = _interpolate(str(service.get("user", "")))
        assert user, f"{name} runs as the image's user: name one"
        assert user.split(":")[0] not in {"root", "0"}, f"{name} runs as root"
        assert service.get("read_only") is True, f"{name}: root file system not read-only"
        assert service.get("cap_drop") == ["ALL"], f"{name} keeps capabilities"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        test = service.get("healthcheck", {}).get("test", [])
        assert test and test[0] == "CMD", f"{name} has no health check"
    for name in GATEWAY_SERVICES:
        test = _yaml(COMPOSE)["services"][name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "/opt/dublin-gateway/healthcheck.py"]


@pytest.fixture(scope="module")
def compose_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/compose-setup.sh run beside a copy of the compose file (as the README's user)."""
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, folder / "compose.yaml")
    env = os.environ | {"GATEWAY": str(BIN / "gateway"), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(DEPLOY / "compose-setup.sh"), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_compose_setup_writes_what_the_compose_file_mounts(compose_demo: Path) -> None:
    compose = _yaml(COMPOSE)
    sources = [v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])]
    sources += [s["file"] for s in compose["secrets"].values()]
    for source in sources:
        if source.startswith("./"):
            assert (compose_demo / source).exists(), f"{source} is mounted but not created"
    env = dict(line.split("=", 1) for line in (compose_demo / ".env").read_text().splitlines())
    assert set(env) == {"GATEWAY_UID", "GATEWAY_GID"} and env["GATEWAY_UID"] != "0"
    assert (compose_demo / "demo" / "pgpass").stat().st_mode & 0o077 == 0  # asyncpg: 0600


def test_compose_setup_configurations_load_and_point_at_the_compose_network(
    compose_demo: Path,
) -> None:
    endpoints = {
        a["code"]: a["endpoint"]
        for a in json.loads((compose_demo / "demo" / "pki" / "directory.json").read_text())[
            "authorities"
        ]
    }
    assert endpoints == {c: f"https://{c.lower()}.dublin.test:8443" for c in AUTHORITIES}
    for code in AUTHORITIES:
        etc = compose_demo / "demo" / "etc" / code
        config = load_config(etc / "gateway.toml")
        assert config.authority == code
        assert (config.peer.host, config.peer.port, config.api.port) == ("0.0.0.0", 8443, 8080)
        for path in (
            config.directory,
            config.ca_cert,
            config.crl,
            config.tls_key,
            config.signing_key,
        ):
            assert path is not None and path.is_relative_to(etc), f"{path} is outside the mount"
            assert path.is_file()
        for key in (config.tls_key, config.signing_key):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert set(config.api.tokens) == {
            "case-officer",
            "health-practitioner",
            "administrator",
            "auditor",
        }
    be_du = load_config(compose_demo / "demo" / "etc" / "BE-DU" / "gateway.toml")
    assert be_du.database_url == "postgresql+asyncpg://gateway@postgres:5432/be_du"
    nl_du = load_config(compose_demo / "demo" / "etc" / "NL-DU" / "gateway.toml")
    assert nl_du.database_url == "sqlite+aiosqlite:////var/lib/dublin-gateway/gateway.db"


# -- systemd --------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and settings (a setting may repeat, unlike in configparser)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


HARDENING = {
    "User": "dublin-gateway",
    "Group": "dublin-gateway",
    "ProtectSystem": "strict",
    "ProtectHome": "true",
    "PrivateTmp": "true",
    "NoNewPrivileges": "true",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "ProtectKernelTunables": "true",
    "ProtectKernelModules": "true",
    "ProtectKernelLogs": "true",
    "ProtectControlGroups": "true",
    "LockPersonality": "true",
    "MemoryDenyWriteExecute": "true",
    "ReadWritePaths": "/var/lib/dublin-gateway /var/log/dublin-gateway",
    "Restart": "on-failure",
    "Type": "exec",
    "ExecStart": (
        "/opt/dublin-gateway/venv/bin/gateway serve --config /etc/dublin-gateway/gateway.toml"
    ),
    "ExecReload": "/bin/kill -HUP $MAINPID",
}


def test_unit_runs_as_its_own_user_with_the_hardening_directives() -> None:
    service = _unit(UNIT)["Service"]
    assert {k: service.get(k, [None])[-1] for k in HARDENING} == HARDENING
    # Nothing writable but the data and log folders: no other ReadWritePaths, /etc read-only.
    assert service["ReadWritePaths"] == [HARDENING["ReadWritePaths"]]


def test_unit_start_command_is_the_gateways_own() -> None:
    """`gateway serve --config FILE` (README, Commands): the option the CLI really has."""
    done = subprocess.run([BIN / "gateway", "serve", "--help"], capture_output=True, text=True)
    assert "--config CONFIG" in done.stdout


def _verify_output(unit: Path) -> list[str]:
    """What `systemd-analyze verify` says about this unit. It also loads the units ours
    names (network-online.target, multi-user.target) and may complain about the host's own
    units (a container without a running systemd, a distribution's unit with a setting this
    version does not know); those lines name another unit file and are not ours to fix, so
    only lines that name our unit, or name no unit file at all, are kept."""
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"SYSTEMD_LOG_COLOR": "0"},
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    other_unit = re.compile(r"^/\S+\.(service|target|socket|mount|timer|path|slice):\d+:")
    return [line for line in lines if unit.name in line or not other_unit.match(line)]


@pytest.fixture
def installed_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart names an executable that exists here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    program = tmp_path / "gateway"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^ExecStart=\S+", f"ExecStart={program}", text)
    assert count == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


def test_unit_passes_systemd_analyze_verify(installed_unit: Path) -> None:
    assert _verify_output(installed_unit) == []


def test_systemd_analyze_verify_reports_a_mistake_in_the_unit(installed_unit: Path) -> None:
    """The filter above keeps what systemd says about our unit (so the test above can fail)."""
    text = installed_unit.read_text().replace(
        "ProtectHome=true", "ProtectHome=sometimes\nProtectHomme=true"
    )
    installed_unit.write_text(text)
    said = "\n".join(_verify_output(installed_unit))
    assert "ProtectHomme" in said and "sometimes" in said


def test_unit_exposure_level_is_low(installed_unit: Path) -> None:
    """`systemd-analyze security` scores 0 (locked down) to 10; the unit must stay under 2."""
    done = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--threshold=20",
            "--no-pager",
            str(installed_unit),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "unrecognized option" in done.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_sysusers_and_tmpfiles_create_the_user_and_private_folders(tmp_path: Path) -> None:
    """Config 0750 root:dublin-gateway, data and logs 0700 dublin-gateway (docs/deploy.md)."""
    if shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None:
        pytest.skip(
            "systemd-sysusers / systemd-tmpfiles are not installed (Debian package systemd)"
        )
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to give the folders their owners")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for tool, conf in (("systemd-sysusers", "sysusers"), ("systemd-tmpfiles", "tmpfiles")):
        args = [tool, f"--root={root}", str(DEPLOY / "systemd" / f"dublin-gateway.{conf}")]
        if tool == "systemd-tmpfiles":
            args.insert(1, "--create")
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
    }
    uid, gid = int(passwd["dublin-gateway"][2]), int(passwd["dublin-gateway"][3])
    assert passwd["dublin-gateway"][6] == "/usr/sbin/nologin"
    modes = {
        folder: (stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid)
        for folder in ("etc/dublin-gateway", "var/lib/dublin-gateway", "var/log/dublin-gateway")
        for s in [(root / folder).stat()]
    }
    assert modes == {
        "etc/dublin-gateway": (0o750, 0, gid),
        "var/lib/dublin-gateway": (0o700, uid, gid),
        "var/log/dublin-gateway": (0o700, uid, gid),
    }


# -- Containerfile --------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", path.read_text(encoding="utf-8"))
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions(CONTAINERFILE)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_image_runs_as_a_non_root_user() -> None:
    users = [args for word, args in _final_stage() if word == "USER"]
    assert users, "the final stage has no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_image_is_built_from_a_slim_python_311_debian_image_and_the_projects_wheel() -> None:
    steps = _instructions(CONTAINERFILE)
    base = next(args for word, args in steps if word == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(
        r"PYTHON_IMAGE=docker\.io/library/python:3\.11-slim-(bookworm|trixie)", base
    )
    assert [args for word, args in steps if word == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE}",
    ]
    assert any(word == "RUN" and "pip wheel" in args for word, args in steps)
    for word, args in steps:  # every file copied from the context exists
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), source


def test_image_health_check_asks_readyz_and_volumes_are_declared() -> None:
    final = dict(_final_stage())
    assert "/opt/dublin-gateway/healthcheck.py" in final["HEALTHCHECK"]
    assert "GATEWAY_HEALTH_URL=http://127.0.0.1:8080/readyz" in final["ENV"]
    assert json.loads(final["VOLUME"]) == ["/var/lib/dublin-gateway"]
    assert json.loads(final["ENTRYPOINT"]) == ["gateway"]
    assert json.loads(final["CMD"]) == ["serve", "--config", "/etc/dublin-gateway/gateway.toml"]
    assert final["EXPOSE"] == "8443/tcp"


class _Readiness(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readiness() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Readiness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _health(url: str) -> int:
    env = os.environ | {"GATEWAY_HEALTH_URL": url, "http_proxy": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, HEALTHCHECK], env=env, capture_output=True, timeout=30
    ).returncode


def test_health_check_is_healthy_only_when_readyz_answers_2xx(
    readiness: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = readiness.server_address[1]
    assert _health(f"http://127.0.0.1:{port}/readyz") == 0
    monkeypatch.setattr(_Readiness, "status", 503)
    assert _health(f"http://127.0.0.1:{port}/readyz") == 1
    readiness.shutdown()
    readiness.server_close()
    assert _health(f"http://127.0.0.1:{port}/readyz") == 1  # nothing listens


def _builder() -> str:
    """A container builder that answers, else skip saying which is missing."""
    for tool in ("docker", "podman"):
        if shutil.which(tool) is None:
            continue
        try:
            info = subprocess.run([tool, "info"], capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            continue
        if info.returncode == 0:
            return tool
    pytest.skip("no container builder: `docker info` and `podman info` fail or are not installed")


_UNREACHABLE = (
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "i/o timeout",
    "TLS handshake timeout",
    "connection refused",
    "no such host",
    "Could not fetch URL",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
)


def test_image_builds_and_runs_the_gateway(tmp_path: Path) -> None:
    """Only where a builder works: the base image (local or pulled within 3 minutes) and
    PyPI for the build stage; a registry or index out of reach skips, it does not fail."""
    tool = _builder()
    base = "docker.io/library/python:3.11-slim-bookworm"
    if subprocess.run([tool, "image", "inspect", base], capture_output=True).returncode != 0:
        try:
            pulled = subprocess.run(
                [tool, "pull", base], capture_output=True, text=True, timeout=180
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"{base} is not present and could not be pulled within 3 minutes")
        if pulled.returncode != 0:
            pytest.skip(
                f"{base} is not present and cannot be pulled: {pulled.stderr.strip()[-300:]}"
            )
    tag = "localhost/dublin-gateway:test-deploy"
    build = [tool, "build", "-f", str(CONTAINERFILE), "-t", tag]
    build += ["--format", "docker"] if tool == "podman" else []
    try:
        built = subprocess.run([*build, str(REPO)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("the image build took more than 15 minutes (package index too slow?)")
    output = built.stdout + built.stderr
    if built.returncode != 0:
        if any(sign in output for sign in _UNREACHABLE):
            pytest.skip(
                f"the build could not reach a registry or the package index: {output[-300:]}"
            )
        pytest.fail(f"image build failed:\n{output[-6000:]}")
    try:
        ran = subprocess.run(
            [tool, "run", "--rm", "--read-only", tag, "--version"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        user = subprocess.run(
            [tool, "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run([tool, "image", "rm", tag], capture_output=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert user.stdout.strip() == "10001"


# -- Prometheus alert rules -----------------------------------------------------------------

METRICS = {
    "gateway_outbox_messages",
    "gateway_deliveries_total",
    "gateway_transmissions_received_total",
    "gateway_deadlines_open",
    "gateway_deadlines_expired_total",
    "gateway_http_request_duration_seconds_bucket",
    "gateway_http_request_duration_seconds_sum",
    "gateway_http_request_duration_seconds_count",
    "gateway_trust_reloads_refused_total",
    "gateway_own_certificate_status",
    "gateway_acknowledgements_refused_total",
    "up",
}
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions or
    aggregations (followed by a parenthesis), keywords, grouping labels, label matchers,
    strings or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\boffset\s+\w+", " ", expr)
    names = re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in _KEYWORDS}


def test_metric_names_are_read_from_an_expression() -> None:
    expr = (
        'sum by (job, le) (rate(a_total{x="b_total"}[5m] offset 1h))'
        " / on (job) group_left up > bool 0.5"
    )
    assert metric_names(expr) == {"a_total", "up"}


def _rules() -> list[dict[str, Any]]:
    document = _yaml(ALERTS)
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)), "group names must be unique"
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"]
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_have_the_prometheus_rule_file_structure() -> None:
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    alerts = [rule["alert"] for rule in _rules()]
    assert len(alerts) == len(set(alerts))


def test_alert_expressions_use_only_the_gateways_metrics_and_up() -> None:
    used: set[str] = set()
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names and names <= METRICS, f"{rule['alert']}: {names - METRICS}"
        used |= names
    assert used >= {
        "up",
        "gateway_outbox_messages",
        "gateway_deliveries_total",
        "gateway_own_certificate_status",
        "gateway_trust_reloads_refused_total",
        "gateway_acknowledgements_refused_total",
    }


def test_an_interruption_rule_is_named_for_article_6_2_of_2025_2055() -> None:
    """Implementing Regulation (EU) 2025/2055, Art. 6(2): an interruption of more than seven
    working hours is notified; PromQL cannot count working hours, and the rule says so."""
    rule = next(r for r in _rules() if r["alert"] == "AccessPointInterruption_IR_2025_2055_Art6_2")
    assert "[7h:" in rule["expr"] and "up{" in rule["expr"]
    text = " ".join(rule["annotations"].values())
    for words in (
        "2025/2055",
        "Art. 6(2)",
        "seven working hours",
        "wall-clock",
        "cannot be computed in PromQL",
    ):
        assert words in text


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_access_point_alerts_fire_when_every_node_is_down(promtool: str, tmp_path: Path) -> None:
    """Two BE-DU nodes down from the first minute, NL-DU up: the early warning after 5
    minutes; the Art. 6(2) rule once 7 hours of scrapes found no node up (BE-DU's second node
    answered the first scrape), and not before."""
    document = _yaml(ALERTS)
    for rule in (r for g in document["groups"] for r in g["rules"]):
        rule.pop("annotations")  # templates are not what is tested here
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(document))
    down = {"job": "dublin-gateway", "authority": "BE-DU"}
    art = "AccessPointInterruption_IR_2025_2055_Art6_2"
    regulation = {"regulation": "Implementing Regulation (EU) 2025/2055, Art. 6(2)"}
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'up{job="dublin-gateway",authority="BE-DU",instance="be-du-1"}',
                        "values": "0x500",
                    },
                    {
                        "series": 'up{job="dublin-gateway",authority="BE-DU",instance="be-du-2"}',
                        "values": "1 0x500",
                    },
                    {
                        "series": 'up{job="dublin-gateway",authority="NL-DU",instance="nl-du"}',
                        "values": "1x500",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "GatewayAccessPointDown", "exp_alerts": []},
                    {
                        "eval_time": "7m",
                        "alertname": "GatewayAccessPointDown",
                        "exp_alerts": [{"exp_labels": down | {"severity": "warning"}}],
                    },
                    {"eval_time": "419m", "alertname": art, "exp_alerts": []},
                    {
                        "eval_time": "421m",
                        "alertname": art,
                        "exp_alerts": [
                            {"exp_labels": down | regulation | {"severity": "critical"}}
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
