"""CSV import: a feature with threads and worker processes, built on the store.

`rows` reads and checks a file (no database), `phones` classifies numbers in worker
processes, `batch` upserts one batch of rows, `importer` runs the three overlapped;
`batch` also fires the tag and list triggers of what it added.
"""
