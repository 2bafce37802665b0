"""The public-link-shortener list (R10) read from its files on disk.

`sms/` does no I/O, so the list its link rules take is read here: the list shipped in
the package, extended by the operator's own file (`SENDLINE_SHORTENERS_FILE`, same
format: one domain a line, `#` comments).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from sendline.errors import ConfigError
from sendline.sms.links import ShortenerList

_PACKAGED = "public-link-shorteners.txt"


@cache
def packaged_shorteners() -> ShortenerList:
    text = resources.files("sendline.data").joinpath(_PACKAGED).read_text(encoding="utf-8")
    return ShortenerList.from_lines(text.splitlines())


def shorteners(extra_file: Path | None = None) -> ShortenerList:
    """The packaged list, plus the domains in `extra_file` when given."""
    base = packaged_shorteners()
    if extra_file is None:
        return base
    try:
        text = extra_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read shortener list {extra_file}: {exc}") from exc
    return base.extended(ShortenerList.from_lines(text.splitlines()).domains)
