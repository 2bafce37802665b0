"""Sendline: self-hosted SMS marketing automation that keeps senders legal."""

__version__ = "0.1.0"
