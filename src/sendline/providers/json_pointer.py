"""JSON Pointer (RFC 6901): where a value sits in a gateway's JSON answer or webhook.

Pure and small on purpose: a gateway config says `id_pointer: /message/id`, and the
adapter and the webhooks read the value there. Only lookup is needed (no `-`, no
patching), so this is a dozen lines rather than a dependency.
"""

from __future__ import annotations

from typing import Any

POINTER_HINT = "must be a JSON Pointer such as /message/id"


class _Missing:
    """The pointer leads nowhere (distinct from a JSON null that is there)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def check_pointer(pointer: str) -> str:
    """`pointer` if it is a JSON Pointer to something inside a document; ValueError
    otherwise (the whole document, "", is never what a config means)."""
    if not pointer.startswith("/"):
        raise ValueError(POINTER_HINT)
    rest = pointer.replace("~0", "").replace("~1", "")
    if "~" in rest:
        raise ValueError(f"{POINTER_HINT} (~ must be escaped as ~0, / as ~1)")
    return pointer


def tokens(pointer: str) -> list[str]:
    """The reference tokens, unescaped (~1 before ~0, as RFC 6901 section 4 says)."""
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]


def resolve(document: Any, pointer: str) -> Any:
    """The value at `pointer` in `document`, or MISSING when there is none."""
    current = document
    for token in tokens(pointer):
        if isinstance(current, dict):
            if token not in current:
                return MISSING
            current = current[token]
        elif isinstance(current, list):
            # RFC 6901: an array index is 0 or digits without a leading zero.
            if not token.isdigit() or (token != "0" and token.startswith("0")):
                return MISSING
            index = int(token)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def scalar_at(document: Any, pointer: str | None) -> str | None:
    """The string, number or boolean at `pointer`, as text; None when absent, null, empty
    or a structure (an id or a code is never an object)."""
    if pointer is None:
        return None
    value = resolve(document, pointer)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None
