"""A benchmark worker that sends through the Twilio adapter to a fake Twilio API.

`python -m bench.providers_worker DATABASE_URL API_URL ACCOUNT_SID AUTH_TOKEN CONCURRENCY`
- the real Worker loop with `TwilioProvider` (the official SDK) and CONCURRENCY calls in
flight; prints "ready" once idle, then works until it has worked and none is left (as
`bench.engine_worker`). Its CPU time and peak RSS are read by the parent.
"""

from __future__ import annotations

import sys
import threading
import time

from bench.engine_worker import IDLE_CHECK_AFTER, work_left
from sendline.engine.worker import Worker, WorkerOptions, tune_garbage_collector
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
    worker = Worker(factory, provider, options)
    tune_garbage_collector()
    loop = threading.Thread(target=worker.run)
    loop.start()
    while worker.idle_since is None and loop.is_alive():
        time.sleep(0.01)
    ready_idle_since = worker.idle_since
    print("ready", flush=True)
    while loop.is_alive():
        time.sleep(0.05)
        idle_since = worker.idle_since
        worked = idle_since != ready_idle_since
        idle = idle_since is not None and time.monotonic() - idle_since > IDLE_CHECK_AFTER
        if worked and idle and not work_left(factory):
            worker.stop()
    loop.join()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
