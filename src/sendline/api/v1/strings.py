"""What every free-text input under /api/v1 must match.

PostgreSQL refuses a NUL character in text and in jsonb (`\\u0000`), with an error the
request would turn into a 500; SQLite stores it and the same request would succeed
there. A `pattern` in the schema makes it a 422 on both, and tells clients (and
Schemathesis) up front.
"""

from __future__ import annotations

NO_NUL = r"^[^\x00]*$"
