"""HTTP API (FastAPI): thin routes that parse, call engine/store, and map errors."""
