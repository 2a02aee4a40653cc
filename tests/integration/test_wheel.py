"""The wheel, not the source tree: `pip install .` gives a gateway that runs (issue 15).

Every other test imports the package from the source tree (an editable install), where files
beside the package are always there. Here the wheel is built from a clean copy of the source
(a stale build/ folder would hide a file missing from the package data), installed into a
fresh virtual environment outside the source tree, with its dependencies from the package
index (pip's cache keeps this to seconds), and run from a folder that is neither: the demo
(three `gateway serve` processes exchanging signed forms), the OpenAPI document and the
auditors' page they serve, and the folder adapter submitting an XML drop file. Run alone with
`pytest -m wheel`; skipped, saying why, when the package index cannot be reached."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.wheel]

# Never part of a build: version control, local environments, caches and earlier builds.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    source: Path
    bin: Path
    outside: Path
    """An empty folder outside the source tree and the environment: every command's cwd."""

    def env(self) -> dict[str, str]:
        """The environment a user of the installed gateway has: nothing pointing at the
        source tree or at the test's own virtual environment."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSAFEPATH")
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.outside,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _pip(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# pip's words when it cannot reach the package index (connection refused, no DNS, no route,
# time-outs, a proxy refusing): then a failed step says nothing about the wheel.
_UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
)


def _skip_if_the_index_was_unreachable(failed: subprocess.CompletedProcess[str], step: str) -> None:
    """A pip step failed: skip when pip says it could not reach the package index, else fail
    with pip's own words (a missing or unsatisfiable requirement is a real failure)."""
    output = failed.stdout + failed.stderr
    for line in output.splitlines():
        if any(sign in line for sign in _UNREACHABLE):
            pytest.skip(f"{step}: the package index cannot be reached: {line.strip()[:300]}")
    pytest.fail(f"{step} failed:\n{output[-6000:]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE, symlinks=True)
    dist = work / "dist"
    # An absolute path: `pip wheel source` would fetch a PyPI project named "source".
    built = _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source))
    if built.returncode != 0:
        _skip_if_the_index_was_unreachable(built, "building the wheel")
    (wheel,) = dist.glob("dublin_gateway-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        _skip_if_the_index_was_unreachable(done, "installing the wheel's dependencies")
    outside = work / "elsewhere"
    outside.mkdir()
    return Installed(wheel, source, venv / "bin", outside)


def test_the_wheel_holds_every_file_of_the_packages_and_the_licence(installed: Installed) -> None:
    """Data read at run time (XSDs, example forms, rule packs, the auditors' page, the
    migrations) ships inside the packages; the wheel carries the EUPL text."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    for package in ("gateway", "adapters"):
        for path in (installed.source / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                name = path.relative_to(installed.source).as_posix()
                assert name in names, f"{name} is not in the wheel"
    for xsd in ("envelope.xsd", "common.xsd", "take-charge-request.xsd", "folder-submission.xsd"):
        assert any(n.endswith(f"/{xsd}") for n in names), f"{xsd} is not in the wheel"
    assert any(n.endswith("/take-charge-request.json") for n in names), "no example forms"
    (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    with zipfile.ZipFile(installed.wheel) as wheel:
        text = wheel.read(licence).decode()
    assert text.startswith("EUROPEAN UNION PUBLIC LICENCE v. 1.2")
    assert not any(n.startswith(("tests/", "schemas/", "examples/")) for n in names)


def test_gateway_version_prints_the_installed_version(installed: Installed) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    done = installed.run("gateway", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gateway {version}"


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the demo exited with {proc.returncode} before {path.name}:\n{out}")
        assert time.monotonic() < deadline, f"{path.name} not written in {seconds:.0f} s"
        time.sleep(0.2)


def _get(url: str, token: str | None = None) -> tuple[str, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers.get_content_type(), response.read()


@pytest.fixture
def demo(installed: Installed) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`gateway demo --keep-running` of the installed wheel: its exchange, then its network
    left up for the checks below; stopped with Ctrl-C (SIGINT) as a user would."""
    workdir = installed.outside / "demo"
    proc = subprocess.Popen(
        [str(installed.bin / "gateway"), "demo", "--workdir", str(workdir), "--keep-running"],
        cwd=installed.outside,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(workdir / "network.json", proc, 240)
        yield proc, workdir
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_from_the_installed_wheel_the_demo_openapi_auditor_page_and_folder_adapter_work(
    installed: Installed, demo: tuple[subprocess.Popen[str], Path]
) -> None:
    proc, workdir = demo
    be = json.loads((workdir / "network.json").read_text())["authorities"]["BE-DU"]

    media, body = _get(be["api_url"] + "/api/v1/openapi.json")
    assert media == "application/json"
    assert any(k.startswith("form-") for k in json.loads(body)["components"]["schemas"])
    media, body = _get(be["api_url"] + "/auditor", be["api_tokens"]["auditor"])
    assert media == "text/html" and b"<html" in body.lower()

    root = installed.outside / "case-system"
    token = installed.outside / "token"
    token.write_text(be["api_tokens"]["case-officer"])
    (root / "outgoing").mkdir(parents=True)
    # The drop file documented in docs/adapters/folder.md, as the installed package has it.
    where = installed.run("python", "-c", "from gateway.examples import EXAMPLES; print(EXAMPLES)")
    assert where.returncode == 0, where.stderr
    examples = Path(where.stdout.strip())
    assert examples.is_relative_to(installed.bin.parent), f"{examples} is not the installed one"
    dropped = root / "outgoing" / "request.xml"
    shutil.copy(examples / "folder" / "take-charge-request.xml", dropped)
    an_hour_ago = time.time() - 3600  # written long ago: complete for a one-shot (cron) run
    os.utime(dropped, (an_hour_ago, an_hour_ago))
    adapter = installed.run(
        "gateway-folder-adapter",
        "--api-url",
        be["api_url"],
        "--token-file",
        str(token),
        "--root",
        str(root),
        "--once",
    )
    assert adapter.returncode == 0, adapter.stdout + adapter.stderr
    assert "submitted 1, refused 0" in adapter.stdout, adapter.stdout + adapter.stderr

    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert out.count("acknowledgement of receipt accepted, receipt time") == 8, out
    assert "take charge reply: acceptance (Art. 40)" in out
    assert "arrival of the person" in out
    deemed = "deemed-acceptance (Art. 40(1), 40(8) of 2024-1351); case deemed-accepted"
    assert out.count(deemed) == 2
    assert "Stopped all gateways" in out
    assert "Traceback" not in out


def test_from_the_installed_wheel_init_check_serve_probes_and_metrics(installed: Installed) -> None:
    """An operator's first hour (issue 17): `gateway init`, `gateway config check` listing
    what to install, the files installed (here the demo PKI's), a user added, the check
    passing, and `gateway serve` answering its probes and its metrics; stopped with SIGTERM
    as systemd stops it."""
    out = installed.outside / "etc"
    made = installed.run("gateway", "init", "--authority", "BE-DU", "--out", str(out))
    assert made.returncode == 0, made.stderr
    config = out / "gateway.toml"
    fresh = installed.run("gateway", "config", "check", str(config))
    assert fresh.returncode == 1 and "keys/tls.key cannot be read" in fresh.stdout
    pki = installed.outside / "pki"
    made_pki = installed.run(
        "gateway", "pki", "demo", "--out", str(pki), "--authorities", "BE-DU,NL-DU"
    )
    assert made_pki.returncode == 0, made_pki.stderr
    be = pki / "BE-DU"
    for source, target in (
        (pki / "ca" / "ca.pem", "certs/ca.pem"),
        (be / "tls.pem", "certs/tls.pem"),
        (be / "tls.key", "keys/tls.key"),
        (be / "signing.pem", "certs/signing.pem"),
        (be / "signing.key", "keys/signing.key"),
        (pki / "directory.xml", "directory.xml"),
    ):
        assert source.exists(), f"the demo PKI has no {source}"
        shutil.copy(source, out / target)
    added = installed.run(
        "gateway", "users", "add", "ops", "--role", "administrator",
        "--tokens-file", str(out / "tokens.json"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    token = next(w for w in added.stdout.split() if w.startswith("gwt_"))
    # loopback and any free port: a test never binds a fixed or public address
    text = config.read_text().replace('host = "0.0.0.0"', 'host = "127.0.0.1"')
    config.write_text(text.replace("port = 8443", "port = 0").replace("port = 8080", "port = 0"))
    ready = installed.run("gateway", "config", "check", str(config))
    assert ready.returncode == 0, ready.stdout + ready.stderr

    proc = subprocess.Popen(
        [str(installed.bin / "gateway"), "--log-json", "serve", "--config", str(config)],
        cwd=installed.outside,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        api_port = None
        deadline = time.monotonic() + 120
        while api_port is None:
            assert time.monotonic() < deadline, "the gateway did not start in time"
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"the gateway exited with {proc.returncode}"
            if '"gateway started"' in line:
                api_port = json.loads(line)["api_port"]
        api = f"http://127.0.0.1:{api_port}"
        assert json.loads(_get(api + "/livez")[1]) == {"status": "ok"}
        assert json.loads(_get(api + "/readyz")[1]) == {"status": "ok"}
        media, body = _get(api + "/api/v1/metrics", token)
        assert media == "text/plain"
        for name in ("gateway_outbox_messages", "gateway_deadlines_open", "process_"):
            assert name.encode() in body, name
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
