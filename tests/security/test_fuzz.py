"""Fuzzing the inbound pipeline: a short coverage-guided atheris run in every `make test`
(longer in `make soak`), and hypothesis properties of the safe parser and of the JSON to XML
form mapping. The property in each: hostile input ends in a refusal with a reason, never in
another exception (which would be a server error without a register entry)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.forms import FORM_TYPES
from gateway.core.policy import Rejection
from gateway.xml.forms import FormError, form_to_element
from gateway.xml.parser import parse_untrusted

pytestmark = pytest.mark.attack
REPO = Path(__file__).resolve().parents[2]
FUZZ_SECONDS = int(os.environ.get("GATEWAY_FUZZ_SECONDS", "8"))


def test_coverage_guided_fuzzing_of_the_inbound_pipeline_finds_no_crash(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is installed by the test extras")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(REPO / "fuzz" / "fuzz_inbound.py")
    corpus, crashes = tmp_path / "corpus", tmp_path / "crashes"
    crashes.mkdir()
    subprocess.run(
        [sys.executable, script, "--make-seeds", str(corpus)], env=env, check=True, timeout=120
    )
    run = subprocess.run(
        [
            sys.executable,
            script,
            str(corpus),
            f"-max_total_time={FUZZ_SECONDS}",
            f"-artifact_prefix={crashes}/",
            "-rss_limit_mb=2048",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
        cwd=tmp_path,
    )
    tail = "\n".join(line for line in run.stderr.splitlines() if "Instrumenting" not in line)
    assert run.returncode == 0, tail[-3000:]
    assert "Done" in run.stderr and not list(crashes.iterdir()), tail[-3000:]


XMLISH = st.text(
    alphabet=st.sampled_from(list("<>/=\"' &;!?-[]abcxyzgw:DOCTYPEENTITY%#\n\u00e9\u0000")),
    max_size=300,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), XMLISH.map(lambda s: s.encode("utf-8", "replace"))))
def test_safe_parser_refuses_with_a_reason_or_parses(data: bytes) -> None:
    try:
        parse_untrusted(data, max_bytes=1000, max_depth=8)
    except Rejection as exc:
        assert exc.reason.value and str(exc)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FORM_TYPES)), st.dictionaries(st.text(max_size=15), JSON))
def test_form_mapping_refuses_arbitrary_json_with_a_field_or_builds_valid_xml(
    name: str, data: dict[str, object]
) -> None:
    try:
        form_to_element(FORM_TYPES[name], data)
    except FormError as exc:
        assert str(exc)
