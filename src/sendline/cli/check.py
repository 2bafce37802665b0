"""`sendline check message|phone|reply` (placeholder while the rule core lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Check a message, a phone number or an inbound reply against the rules.")
