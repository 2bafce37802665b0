"""The floor of `bench api`: a bare ASGI endpoint on the same server stack as `sendline serve`.

`python -m bench.api_bare` reads the same settings as `sendline serve` (SENDLINE_HOST,
SENDLINE_PORT, SENDLINE_LOG_LEVEL) and runs uvicorn with the same arguments
(`cli/service.py`), on an app that only reads the request body, parses it as JSON and
answers 202 with a small JSON body: what any endpoint on this stack costs at the least.
Bench-only: the product never mounts it.
"""

from __future__ import annotations

import json
from typing import Any

import uvicorn

from sendline.config import load_settings

ACCEPTED = json.dumps({"name": "", "contact_id": 0, "started": 1, "reasons": []}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ACCEPTED))]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Parse the body as JSON, answer 202 (422 when it is not JSON, as the real route)."""
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        status = 202 if isinstance(json.loads(body), dict) else 422
    except ValueError:
        status = 422
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ACCEPTED})


def main() -> None:
    settings = load_settings()
    # The arguments `sendline serve` passes (cli/service.py `_serve`), nothing more.
    uvicorn.run(bare, host=settings.host, port=settings.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
