"""A benchmark worker that sends through the Twilio adapter to a fake Twilio API.

`python -m bench.providers_worker DATABASE_URL API_URL ACCOUNT_SID AUTH_TOKEN CONCURRENCY`
- the real Worker loop with `TwilioProvider` (the official SDK) and CONCURRENCY calls in
flight; prints "ready" once idle, then works until it has worked and none is left (as
`bench.engine_worker`). Its CPU time and peak RSS are read by the parent.
"""

from __future__ import annotations

import sys

from bench.engine_worker import run_until_done
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.twilio import TwilioProvider
from sendline.store.db import open_engine, session_factory

FROM = "+14155550100"


def main(url: str, api_url: str, sid: str, token: str, concurrency: int) -> None:
    engine = open_engine(url)
    factory = session_factory(engine)
    provider = TwilioProvider(
        "twilio:1",
        account_sid=sid,
        auth_token=token,
        from_number=FROM,
        messaging_service_sid=None,
        api_url=api_url,
        status_callback_url=None,
    )
    options = WorkerOptions(
        worker_id="bench-providers",
        # Batches of several times the calls in flight: the pool runs down at the end of
        # each batch before the next claim.
        batch_size=max(500, 4 * concurrency),
        reconcile_every=3600,
        date_scan_every=3600,
        provider_concurrency=concurrency,
    )
    run_until_done(Worker(factory, provider, options), factory)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
