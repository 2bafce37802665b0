"""`sendline check`: readable, --json and --jsonl, and bad input never crashes it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sendline.cli import app

runner = CliRunner()


def invoke(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_it_prints_a_message_check_as_json() -> None:
    code, out, _ = invoke("check", "message", "Sale at bit.ly/x", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["encoding"] == "GSM-7"
    assert data["segments"] == 1
    assert data["opt_out_clause"] is False
    assert data["sent_body"].endswith("Reply STOP to opt out")
    assert [v["code"] for v in data["violations"]] == ["public_shortener"]
    assert set(data) >= {"characters", "warnings", "sent_segments"}


def test_it_prints_phone_and_reply_checks_as_json() -> None:
    code, out, _ = invoke("check", "phone", "(415) 867-5309", "--json")
    assert code == 0
    assert json.loads(out) == {
        "status": "ok",
        "e164": "+14158675309",
        "region": "US",
        "type": "fixed_line_or_mobile",
    }
    code, out, _ = invoke("check", "phone", "06 12 34 56 78", "--json")
    assert json.loads(out)["status"] == "invalid_phone"
    assert json.loads(out)["e164"] is None
    code, out, _ = invoke("check", "reply", "Arrêt", "--json")
    assert json.loads(out) == {"action": "opt_out"}


def test_it_shows_a_readable_report() -> None:
    code, out, _ = invoke("check", "message", "Our “big” sale at bit.ly/x")
    assert code == 0
    assert "UCS-2" in out
    assert "public_shortener" in out
    assert "ucs2_forced" in out


def test_it_lints_a_stream_and_reports_bad_lines_in_place() -> None:
    lines = [
        json.dumps("Hello there"),
        "42",
        "{not json",
        json.dumps("\ud800 lone surrogate"),
        "",
        json.dumps("Deal bit.ly/x"),
    ]
    stdin = ("\n".join(lines) + "\n").encode() + b"\xff\xfe broken utf-8\n"
    code, out, _ = invoke("check", "message", "--jsonl", stdin=stdin)
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 7
    assert results[0]["segments"] == 1
    assert "JSON string" in results[1]["error"] and "line 2" in results[1]["error"]
    assert "not JSON" in results[2]["error"]
    assert "surrogate" in results[3]["error"]
    assert "empty line" in results[4]["error"]
    assert results[5]["violations"][0]["code"] == "public_shortener"
    assert "UTF-8" in results[6]["error"]


def test_it_streams_phone_and_reply_checks() -> None:
    stdin = "\n".join(json.dumps(s) for s in ["+33 6 12 34 56 78", "+33 1 42 68 53 00"])
    code, out, _ = invoke("check", "phone", "--jsonl", stdin=stdin.encode())
    assert [json.loads(x)["status"] for x in out.splitlines()] == ["ok", "landline"]
    stdin = "\n".join(json.dumps(s) for s in ["STOP", "please stop texting me", "hi"])
    code, out, _ = invoke("check", "reply", "--jsonl", stdin=stdin.encode())
    assert [json.loads(x)["action"] for x in out.splitlines()] == ["opt_out", "review", "none"]


def test_it_answers_a_100_kb_body() -> None:
    code, out, _ = invoke("check", "message", "a" * 100_000, "--json")
    assert code == 0
    assert json.loads(out)["violations"][0]["code"] == "too_long"


@pytest.mark.parametrize(
    "args",
    [
        ("check", "message"),  # neither a body nor --jsonl
        ("check", "message", "x", "--jsonl"),  # both
        ("check", "message", "x", "--max-segments", "11"),
        ("check", "message", "x", "--clause", "Thanks"),  # a clause that is no clause
        ("check", "nope"),
    ],
)
def test_it_exits_2_on_usage_errors(args: tuple[str, ...]) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert "Traceback" not in out + err


def test_it_exits_0_with_violations_unless_strict() -> None:
    assert invoke("check", "message", "bit.ly/x")[0] == 0
    assert invoke("check", "message", "bit.ly/x", "--strict")[0] == 1
    assert invoke("check", "message", "fine", "--strict")[0] == 0


def test_the_installed_command_runs() -> None:
    # The real console script in a real process: what a user's CI would call.
    sendline = [sys.executable, "-m", "sendline.cli"]
    done = subprocess.run(
        [*sendline, "check", "reply", "--jsonl"],
        input=b'"STOP"\n7\n',
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[0] == '{"action": "opt_out"}'
    assert "error" in done.stdout.decode().splitlines()[1]
