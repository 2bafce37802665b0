"""Phone classification for bulk writes, off the main process when it pays.

Parsing and validating a number with libphonenumber is the irreducible cost of an
import. `PhoneChecker` runs `classify` (what `check_phone` answers) in worker processes
while the parent reads the CSV and writes to the database; results come back in
submission order.

The time zone is derived from what `classify` already found (the number type), with
the same prefix table as `sendline.sms.phone.time_zone_for`, instead of parsing and
classifying the number a second time; a test checks both agree on every region.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, is_number_type_geographical
from phonenumbers.timezone import UNKNOWN_TIMEZONE
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

import sendline
from sendline.errors import SendlineError
from sendline.sms.phone import check_phone

# (status, e164, region, time zone)
PhoneResult = tuple[str, str | None, str | None, str | None]

NO_PHONE: PhoneResult = ("no_phone", None, None, None)

_CALLING_CODES = COUNTRY_CODE_TO_REGION_CODE
# check_phone's type names back to libphonenumber's numbers, for the zone table.
_TYPES: dict[str, int] = {
    name.lower(): value for name, value in vars(PhoneNumberType).items() if name.isupper()
}


def classify(raw: str | None) -> PhoneResult:
    """`check_phone` plus the primary time zone of a valid number."""
    if raw is None:
        return NO_PHONE
    check = check_phone(raw)
    if check.e164 is None:
        return (check.status.value, None, check.region, None)
    digits = check.e164[1:]
    # Calling codes are prefix-free: the first 1-3 digits that are one are the one.
    code = next(
        int(digits[:n]) for n in (1, 2, 3) if int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE
    )
    kind = _TYPES[check.number_type or "unknown"]
    zone = zone_for(code, digits[len(str(code)) :], kind)
    return (check.status.value, check.e164, check.region, zone)


def zone_for(code: int, national: str, kind: int) -> str | None:
    """What `time_zone_for(e164)` answers for a valid number of this type."""
    key = f"{code}{national}" if is_number_type_geographical(kind, code) else str(code)
    # Longest prefix of `key` in the table: only the lengths the table holds under
    # this stem are tried, then the few shorter than the stem.
    for length in _LONG_LENGTHS.get(key[:_STEM], _NONE) + _SHORT_LENGTHS:
        if length <= len(key):
            zone = _PRIMARY.get(key[:length], _ABSENT)
            if zone is not _ABSENT:
                return zone
    return None


def _zone_index() -> tuple[dict[str, tuple[int, ...]], dict[str, str | None]]:
    """(stem -> lengths of the table's prefixes of at least _STEM digits, longest first;
    prefix -> its primary known zone)."""
    lengths: dict[str, set[int]] = {}
    primary: dict[str, str | None] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        if len(prefix) >= _STEM:
            lengths.setdefault(prefix[:_STEM], set()).add(len(prefix))
        known = [z for z in zones if z != UNKNOWN_TIMEZONE]
        primary[prefix] = known[0] if known else None
    return {stem: tuple(sorted(ls, reverse=True)) for stem, ls in lengths.items()}, primary


_STEM = 4
_NONE: tuple[int, ...] = ()
_SHORT_LENGTHS = tuple(range(min(_STEM - 1, TIMEZONE_LONGEST_PREFIX), 0, -1))
_ABSENT = "absent"
_LONG_LENGTHS, _PRIMARY = _zone_index()


def classify_many(raws: Sequence[str | None]) -> list[PhoneResult]:
    return [classify(raw) for raw in raws]


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """Worker loop: classify each pickled batch from `source` until None arrives.

    A thread reads ahead so the parent's writes never wait on this process's writes
    (both pipes full would deadlock the two processes).
    """
    batches: queue.SimpleQueue[list[str | None] | None] = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                batch = pickle.load(source)
            except EOFError:
                batch = None
            batches.put(batch)
            if batch is None:
                return

    threading.Thread(target=read, daemon=True).start()
    while (batch := batches.get()) is not None:
        pickle.dump(classify_many(batch), sink, protocol=pickle.HIGHEST_PROTOCOL)
        sink.flush()


class PhoneChecker:
    """Classify batches of raw numbers, in `workers` processes (0: in this process).

    Workers are plain `python -m sendline.importing.phones` processes talking pickle over
    their stdin and stdout: they share nothing with the parent (no inherited database
    connection) and need nothing from its `__main__`. `submit` returns at once;
    `result` returns the results of the oldest submitted batch. At most
    `max_in_flight` batches are outstanding, so memory stays bounded.
    """

    def __init__(self, workers: int) -> None:
        self._pending: deque[int | list[PhoneResult]] = deque()
        self._next = 0
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stderr = tempfile.TemporaryFile() if workers else None
        for _ in range(workers):
            self._procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sendline.importing.phones"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._stderr,
                    env=_child_env(),
                )
            )

    @property
    def max_in_flight(self) -> int:
        return max(1, 2 * len(self._procs))

    def submit(self, raws: list[str | None]) -> None:
        if not self._procs:
            self._pending.append(classify_many(raws))
            return
        index = self._next % len(self._procs)
        self._next += 1
        stdin = self._procs[index].stdin
        assert stdin is not None
        try:
            pickle.dump(raws, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
        except OSError:
            raise self._died() from None
        self._pending.append(index)

    def result(self) -> list[PhoneResult]:
        item = self._pending.popleft()
        if isinstance(item, list):
            return item
        stdout = self._procs[item].stdout
        assert stdout is not None
        try:
            results: list[PhoneResult] = pickle.load(stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise self._died() from None
        return results

    def _died(self) -> SendlineError:
        detail = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode(errors="replace").strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
        return SendlineError(
            f"a phone-checking worker process failed{detail}", code="worker_failed"
        )

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers: let them finish, or (abort) kill them at once."""
        for process in self._procs:
            if abort:
                process.kill()
            elif process.stdin is not None:
                try:
                    process.stdin.close()  # EOF: the worker exits after its last batch
                except OSError:
                    pass
        for process in self._procs:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._procs.clear()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> PhoneChecker:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(abort=exc_type is not None)


def _child_env() -> dict[str, str]:
    """The parent's environment, with the directory Sendline was imported from first."""
    root = str(Path(sendline.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
