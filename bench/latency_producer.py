"""One producer of custom events for bench_latency, as one API process would record them.

`python -m bench.latency_producer URL ACCOUNT_ID INDEX PRODUCERS RATE SECONDS START`
records events INDEX, INDEX + PRODUCERS, ... each at START + seq / RATE (wall clock,
shared by all producers), each in its own transaction, and prints one line per event:
`seq commit_time`.
"""

from __future__ import annotations

import random
import sys
import time

from sqlalchemy import select

from sendline.engine.actions import Actions
from sendline.store.db import create_engine_for, session_factory
from sendline.store.models import Contact


def main(argv: list[str]) -> None:
    url, account_id, index, producers = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    rate, seconds, start = float(argv[4]), float(argv[5]), float(argv[6])
    engine = create_engine_for(url)
    factory = session_factory(engine)
    with factory() as session:
        contacts = list(session.scalars(select(Contact.id).where(Contact.account_id == account_id)))
    rng = random.Random(index)
    lines = []
    for seq in range(index, int(rate * seconds), producers):
        delay = start + seq / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        with factory.begin() as session:
            Actions(session, account_id).record_event(rng.choice(contacts), "shipped", {"seq": seq})
        lines.append(f"{seq} {time.time():.6f}")
    engine.dispose()
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
