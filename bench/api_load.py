"""One load-generator process of `bench api`: raw HTTP/1.1 over keep-alive connections.

`python -m bench.api_load SPEC_JSON` - SPEC_JSON says where (`host`, `port`, `path`,
`key`), what (`contacts`: the first and last contact id drawn from) and how:
- `"mode": "closed"`: `connections` connections, each sending its next request as soon
  as the answer to the last came back, from `start` (wall clock) for `warmup` + `seconds`
  seconds; only answers after the warm-up count (saturation);
- `"mode": "open"`: requests `index`, `index + processes`, ... of a schedule of `rate`
  requests a second over all processes, request n due at `start + n / rate` whether or
  not earlier ones were answered (constant arrival rate, so queueing shows in the
  latency: each is timed from when it was due, not from when a connection was free);
  `connections` connections carry them.
It prints one JSON line: answers counted, statuses, latencies (open mode) and its own
CPU seconds, so the parent can tell whether the generator was the bottleneck.

Written on asyncio streams with prebuilt request bytes and a minimal response reader:
an HTTP client library (httpx) spends more CPU per request than the bare endpoint does.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter
from typing import Any

BODY = '{"name":"shipped","contact_id":%d,"payload":{"order":"A-%d","total":42.5}}'


class Target:
    """Requests to one endpoint: their bytes, and one answer read back."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port = spec["host"], int(spec["port"])
        first, last = spec["contacts"]
        self.contacts = (int(first), int(last))
        self.head = (
            f"POST {spec['path']} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {spec['key']}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.rng = random.Random(spec.get("seed", 0))

    def request(self, seq: int) -> bytes:
        body = (BODY % (self.rng.randint(*self.contacts), seq)).encode()
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    """Send one request, read its whole answer; its status code."""
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def closed(spec: dict[str, Any], target: Target) -> dict[str, Any]:
    begin = spec["start"] + spec["warmup"]
    end = begin + spec["seconds"]
    statuses: Counter[int] = Counter()
    answered = 0

    async def connection(index: int) -> None:
        nonlocal answered
        reader, writer = await target.connect()
        seq = index
        while time.time() < end:
            status = await exchange(reader, writer, target.request(seq))
            answered += 1
            if time.time() >= begin:
                statuses[status] += 1
            seq += spec["connections"]
        writer.close()

    await asyncio.sleep(max(0.0, spec["start"] - time.time()))
    await asyncio.gather(*(connection(i) for i in range(spec["connections"])))
    return {"statuses": statuses, "latencies": [], "answered": answered}


async def open_loop(spec: dict[str, Any], target: Target) -> dict[str, Any]:
    rate, start, step = float(spec["rate"]), spec["start"], spec["processes"]
    total = int(rate * (spec["warmup"] + spec["seconds"]))
    begin = start + spec["warmup"]
    due: asyncio.Queue[int | None] = asyncio.Queue()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    answered = 0

    async def connection() -> None:
        nonlocal answered
        reader, writer = await target.connect()
        while (seq := await due.get()) is not None:
            at = start + seq / rate
            status = await exchange(reader, writer, target.request(seq))
            answered += 1
            if at >= begin:
                statuses[status] += 1
                latencies.append(time.time() - at)
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(spec["connections"])]
    for seq in range(spec["index"], total, step):
        delay = start + seq / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(seq)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return {"statuses": statuses, "latencies": latencies, "answered": answered}


def main(spec: dict[str, Any]) -> None:
    target = Target(spec)
    measure = closed if spec["mode"] == "closed" else open_loop
    result = asyncio.run(measure(spec, target))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["statuses"] = {str(k): v for k, v in result["statuses"].items()}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
