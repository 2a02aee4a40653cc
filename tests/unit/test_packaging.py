"""What an installed gateway needs besides its code, checked without building anything (the
wheel itself is built, installed and run by tests/integration/test_wheel.py, which skips
when the package index cannot be reached): files read at run time live inside the package
and are named by its package data; `gateway --version` answers; the licence is there."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import gateway
from gateway.api.pages import STATIC
from gateway.cli import main
from gateway.examples import EXAMPLES
from gateway.store.store import MIGRATIONS
from gateway.xml.schemas import SCHEMA_DIR

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(gateway.__file__).resolve().parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_folder_read_at_run_time_is_inside_the_package() -> None:
    """A folder beside the package is not installed by `pip install .` (issue 15)."""
    for folder in (SCHEMA_DIR, EXAMPLES, STATIC, MIGRATIONS):
        assert folder.resolve().is_relative_to(PACKAGE), f"{folder} is outside the package"
        assert folder.is_dir() and any(folder.iterdir()), f"{folder} is empty or missing"
    assert (SCHEMA_DIR / "envelope.xsd").is_file()
    assert (EXAMPLES / "take-charge-request.json").is_file()


def test_package_data_names_every_data_file_of_the_packages_and_nothing_that_is_not_there() -> None:
    """Each pattern of [tool.setuptools.package-data] matches a file, and each file under
    gateway/ and adapters/ other than Python code is matched by one."""
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert set(package_data) <= {"gateway", "adapters"}
    covered: set[Path] = set()
    for package, patterns in package_data.items():
        for pattern in patterns:
            matched = {p for p in (REPO / package).glob(pattern) if p.is_file()}
            assert matched, f"package data {package}/{pattern} names no file"
            covered |= matched
    for package in ("gateway", "adapters"):
        for path in (REPO / package).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                assert path in covered, f"{path.relative_to(REPO)} is not package data"


def test_gateway_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    version = PYPROJECT["project"]["version"]
    assert metadata.version("dublin-gateway") == version
    assert capsys.readouterr().out == f"gateway {version}\n"


def test_the_licence_pyproject_names_is_in_the_repository() -> None:
    assert PYPROJECT["project"]["license"] == "EUPL-1.2"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("EUROPEAN UNION PUBLIC LICENCE v. 1.2\n")
    assert "15.Applicable Law" in text and "Appendix" in text
