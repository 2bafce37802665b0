"""The rule core: pure functions for encoding, phones, links, opt-out and templates.

Nothing here does I/O or imports from the rest of Sendline; everything else trusts it.
"""
