"""Access logs without phone numbers or keys.

uvicorn logs each request line, query string included, and a search by phone
(`GET /api/v1/contacts?phone=%2B14155550100`) would put a full number in the log. This
filter masks, in every access-log record, what looks like a phone number and anything shaped
like an API key or signing secret.
"""

from __future__ import annotations

import logging
import re

from sendline.masking import mask_phone

ACCESS_LOGGER = "uvicorn.access"
# +14155550100 or %2B14155550100 anywhere, and any number given as `phone=`/`to=`. Ids
# (`/messages/1234567`) are left alone: they are what an operator greps the log for.
_PHONE = re.compile(r"(?:%2[Bb]|\+)\d{6,}|(?<=phone=)\d{7,}|(?<=to=)\d{7,}")
_SECRET = re.compile(r"\b(sl_live_|sl_admin_|whsec_)[A-Za-z0-9_\-]+")


def scrub(text: str) -> str:
    text = _SECRET.sub(lambda m: m.group(1) + "…", text)
    return _PHONE.sub(
        lambda m: mask_phone(m.group(0).replace("%2B", "+").replace("%2b", "+")), text
    )


class ScrubbingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        record.msg = scrub(str(record.msg))
        return True


def install() -> None:
    """Add the filter to uvicorn's access log, once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, ScrubbingFilter) for f in logger.filters):
        logger.addFilter(ScrubbingFilter())
