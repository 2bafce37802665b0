"""Contact import throughput and memory, beside the floor measured in the same run.

Generates a CSV of BENCH_IMPORT_ROWS contacts (default 1,000,000: unique numbers, 10%
with problems: invalid, landline, empty phone, bad email, duplicate rows), measures the
floor (bare libphonenumber parse + is_valid_number + format_number(E164) of the same
numbers, one core), then imports the file into a fresh SQLite file and a fresh
PostgreSQL database (created and dropped here). Each import runs in its own process so
its peak RSS (VmHWM, and its phone-checking worker's) is its own.

Targets (issue 3): rows/s >= 70% of the floor, peak RSS < 300 MB, memory flat from 100k
to 1M rows.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import phonenumbers

from bench.common import print_table, scratch_postgres

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))
FLOOR_SAMPLE = 200_000
TARGET_RATIO = 0.70
TARGET_RSS_MB = 300
# Real US area codes: every (area, exchange 200-999) number below is valid.
AREAS = (
    "201 202 203 205 206 207 208 212 213 214 215 216 217 218 219 224 225 228 229 231 234 "
    "239 240 248 251 252 253 254 256 260 262 267 269 270 276 281 301 302 303 304 305 307 "
    "308 309 310 312 313 314 315 316 317 318 319 320 321 323 325 330 334 336 337 339 347 "
    "351 352 360 361 385 386 401 402 404 405 406 407 408 409 410 412 413 414 415 417 419 "
    "423 424 425 430 432 434 435 440 443 458 469 470 475 478 479 480 484 501 502 503 504 "
    "505 507 508 509 510 512 513 515 516 517 518 520 530 540 541 551 559 561 562 563 567 "
    "570 571 573 574 575 580 585 586 601 602 603 605 606 607 608 609 610 612 614 615 616 "
    "617 618 619 620 623 626 630 631 636 641 646 650 651 657 660 661 662 678 682 701 702 "
    "703 704 706 707 708 712 713 714 715 716 717 718 719 720 724 727 731 732 734 740 747 "
    "754 757 760 762 763 765 769 770 772 773 774 775 779 781 785 786 801 802 803 804 805"
).split()
FORMATS = ("({a}) {e}-{n}", "{a}-{e}-{n}", "+1 {a} {e} {n}", "{a}.{e}.{n}", "{a}{e}{n}")
SPACE = len(AREAS) * 800 * 10_000
STRIDE = 2_654_435_761  # coprime with SPACE: i -> i * STRIDE % SPACE never repeats


def _number(index: int, rng: random.Random) -> str:
    slot = index * STRIDE % SPACE
    area, rest = AREAS[slot % len(AREAS)], slot // len(AREAS)
    exchange, line = 200 + rest % 800, rest // 800
    if index % 10 == 9:  # some international mobiles, as a real list has
        return f"+44 7{700 + index % 200} {line:06d}"
    return rng.choice(FORMATS).format(a=area, e=exchange, n=f"{line:04d}")


def generate(path: Path, rows: int) -> list[str]:
    """Write the CSV; return its phone column (for the floor)."""
    rng = random.Random(20260105)
    phones: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Last Name", "Mobile", "SMS opt-in"])
        previous: list[str] = []
        for index in range(rows):
            problem = index % 50  # 5 problems in every 50 rows: 10%
            email, phone = f"user{index}@example.com", _number(index, rng)
            if problem == 0:
                phone = f"0{rng.randint(6, 7)} {rng.randint(10, 99)} {rng.randint(10, 99)} 78"
            elif problem == 1:
                phone = f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            elif problem == 2:
                phone = ""
            elif problem == 3:
                email = f"user{index} at example.com"
            row = [email, f"First{index}", f"Last{index % 997}", phone, "yes"]
            if problem == 4 and previous:
                row = previous  # a duplicate of the previous row
            writer.writerow(row)
            previous = row
            if row[3]:
                phones.append(row[3])
    return phones


def floor(phones: list[str]) -> tuple[float, float]:
    """Bare libphonenumber parse + validate + format: (per second, CPU µs per number)."""
    e164 = phonenumbers.PhoneNumberFormat.E164
    started, cpu = time.perf_counter(), time.process_time()
    for raw in phones:
        try:
            number = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, e164)
    count = len(phones)
    return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds of a PostgreSQL backend on this machine (0 when not applicable)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _import_child(url: str, path: str, results: Any) -> None:
    """Runs in a fresh process: migrate, create an account, import, report figures."""
    from datetime import date

    from sqlalchemy import text

    from sendline.importing.importer import ImportOptions, import_contacts
    from sendline.store.accounts import Accounts
    from sendline.store.db import create_engine_for, session_factory, upgrade

    engine = create_engine_for(url)
    upgrade(engine)
    factory = session_factory(engine)
    with factory.begin() as session:
        account = Accounts(session).create(
            "Bench", product_line="marketing", tier="plus", last_purchase_on=date(2024, 1, 1)
        )
    samples: dict[str, int] = {}

    def progress(rows: int, _expected: int) -> None:
        for mark in (100_000, 500_000):
            if rows >= mark and f"rss_{mark}" not in samples:
                samples[f"rss_{mark}"] = _rss_kb()

    options = ImportOptions(
        mapping=["Mobile=phone", "SMS opt-in=consent"],
        disclosure="Bench Co: marketing texts, up to 4/month. Reply STOP to opt out.",
        report_path=Path(path).with_suffix(".rejects.csv"),
    )
    with factory.begin() as session:
        backend = None
        if engine.dialect.name == "postgresql":
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        cpu = (_cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)), _backend_cpu(backend))
        report = import_contacts(session, account.id, Path(path), options, progress)
        cpu_main = _cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - cpu[0]
        cpu_backend = _backend_cpu(backend) - cpu[1]
    engine.dispose()
    results.put(
        {
            "rows": report.rows,
            "rejected": report.rejected,
            "seconds": report.seconds,
            "rss_100k": samples.get("rss_100000", 0),
            "rss_500k": samples.get("rss_500000", 0),
            "rss_end": _rss_kb(),
            "hwm": _rss_kb("VmHWM"),
            "worker_hwm": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            "cpu_main": cpu_main,
            "cpu_workers": _cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)),
            "cpu_backend": cpu_backend,
        }
    )


def _measure(url: str, path: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_import_child, args=(url, str(path), results))
    process.start()
    figures: dict[str, Any] = results.get()
    process.join()
    return figures


def run() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sendline-bench-"))
    try:
        _run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(workdir: Path) -> None:
    path = workdir / "contacts.csv"
    started = time.perf_counter()
    phones = generate(path, ROWS)
    size_mb = path.stat().st_size / 1e6
    print(f"   generated {ROWS:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")
    # The machine is shared: the floor is taken just before and just after each import,
    # on a sample of the same numbers (every k-th), so both see the same load.
    sample = phones[:: max(1, len(phones) // FLOOR_SAMPLE)]
    del phones
    runs: list[tuple[str, str, Any]] = [("sqlite", f"sqlite:///{workdir / 'bench.db'}", None)]
    postgres = scratch_postgres()
    if postgres is not None:
        runs.append(("postgresql", postgres[0], postgres[1]))
    table = []
    cpu_table = []
    for name, url, cleanup in runs:
        before = floor(sample)
        try:
            figures = _measure(url, path)
        finally:
            if cleanup is not None:
                cleanup()
        after = floor(sample)
        base, base_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        table.append(_row(name, figures, base))
        cpu_table.append(_cpu_row(name, figures, base_cpu))
    print_table(HEADERS, table)
    print()
    print_table(CPU_HEADERS, cpu_table)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"   machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    print(
        f"   floor: bare phonenumbers parse + is_valid_number + format_number(E164), one core, "
        f"on {len(sample):,} of the numbers, the mean of runs just before and after each import"
    )
    print(
        "   memory: on SQLite the import raises the page cache to 64 MB for its connection "
        "(restored at the end): RSS grows until that cap is filled, then stays flat"
    )
    print(
        f"   targets: >= {TARGET_RATIO:.0%} of the floor, peak RSS < {TARGET_RSS_MB} MB "
        "(importer and worker each), flat from 100k rows to the end"
    )


HEADERS = (
    "database",
    "floor/s",
    "rows",
    "rejected",
    "s",
    "rows/s",
    "of floor",
    "RSS@100k MB",
    "RSS@500k MB",
    "RSS@end MB",
    "peak MB",
    "worker peak MB",
)


def _row(name: str, figures: dict[str, Any], base: float) -> list[str]:
    rate = figures["rows"] / figures["seconds"]
    return [
        name,
        f"{base:,.0f}",
        f"{figures['rows']:,}",
        f"{figures['rejected']:,}",
        f"{figures['seconds']:.1f}",
        f"{rate:,.0f}",
        f"{rate / base:.0%}",
        f"{figures['rss_100k'] / 1024:.0f}" if figures["rss_100k"] else "-",
        f"{figures['rss_500k'] / 1024:.0f}" if figures["rss_500k"] else "-",
        f"{figures['rss_end'] / 1024:.0f}",
        f"{figures['hwm'] / 1024:.0f}",
        f"{figures['worker_hwm'] / 1024:.0f}",
    ]


CPU_HEADERS = (
    "database",
    "importer µs/row",
    "phone workers",
    "PostgreSQL",
    "total",
    "floor µs/number",
    "total / floor",
    "rows/s bound (2 idle cores)",
)


def _cpu_row(name: str, figures: dict[str, Any], floor_cpu: float) -> list[str]:
    """CPU per row, whatever else the machine is doing: what the import costs."""
    rows = figures["rows"]
    main, workers, backend = (
        figures[k] / rows * 1e6 for k in ("cpu_main", "cpu_workers", "cpu_backend")
    )
    total = main + workers + backend
    return [
        name,
        f"{main:.0f}",
        f"{workers:.0f}",
        f"{backend:.0f}" if backend else "-",
        f"{total:.0f}",
        f"{floor_cpu:.0f}",
        f"{total / floor_cpu:.2f}",
        f"{2e6 / total:,.0f}",
    ]
