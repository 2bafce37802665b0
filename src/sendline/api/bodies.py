"""Request bodies read with a cap: a webhook is public, and a carrier's status report or
inbound text fits in a few hundred bytes, so a body past the cap is refused before it is
read whole (the `Content-Length` it declares, then the bytes that actually come)."""

from __future__ import annotations

from fastapi import Request

MAX_WEBHOOK_BODY = 64 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a webhook body is at most {limit // 1024} KiB")
        self.limit = limit


async def capped_body(request: Request, limit: int = MAX_WEBHOOK_BODY) -> bytes:
    """The raw body (signatures cover its exact bytes); BodyTooLarge past `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise BodyTooLarge(limit)
    return bytes(chunks)
