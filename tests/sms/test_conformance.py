"""Segment counts must agree with Twilio's message-segment-calculator on every published
test vector (R9). The vectors live outside the repo in `../shared/conformance/`; a copy in
`tests/sms/data/` is always tested, so the suite never depends on the outside file alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sendline.sms.encoding import segment_info, split_segments

NAME = "segments-twilio-calculator.jsonl"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "conformance" / NAME
LOCAL = Path(__file__).resolve().parent / "data" / NAME


def _load(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _params(path: Path) -> list[Any]:
    if not path.exists():
        return [pytest.param(None, id="missing")]
    return [pytest.param(case, id=f"{n}") for n, case in enumerate(_load(path), start=1)]


def _require(path: Path) -> None:
    """A missing vector file is a broken CI checkout, but only a skip on a laptop."""
    if path.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"conformance vectors missing: {path}")
    pytest.skip(f"conformance vectors not found at {path}")


def _check(case: dict[str, Any]) -> None:
    body = case["body"]
    info = segment_info(body)
    got = {"encoding": info.encoding.value, "segments": info.segments}
    got["characters"] = info.characters
    expected = {k: case[k] for k in ("encoding", "segments", "characters")}
    assert got == expected, case["source"]
    pieces = split_segments(body)
    assert "".join(pieces) == body
    assert len(pieces) == info.segments


@pytest.mark.parametrize("case", _params(SHARED))
def test_it_matches_the_calculator_on_the_shared_vectors(case: dict[str, Any] | None) -> None:
    _require(SHARED)
    assert case is not None
    _check(case)


@pytest.mark.parametrize("case", _params(LOCAL))
def test_it_matches_the_calculator_on_the_repo_copy(case: dict[str, Any] | None) -> None:
    assert case is not None, f"the repo copy {LOCAL} is missing"
    _check(case)


def test_it_keeps_the_repo_copy_in_step_with_the_shared_vectors() -> None:
    _require(SHARED)
    assert _load(LOCAL) == _load(SHARED), f"refresh {LOCAL} from {SHARED}"


def test_it_has_vectors_for_both_encodings() -> None:
    cases = _load(LOCAL)
    assert len(cases) >= 50
    assert {c["encoding"] for c in cases} == {"GSM-7", "UCS-2"}
    assert all(set(c) >= {"body", "encoding", "segments", "characters", "source"} for c in cases)
