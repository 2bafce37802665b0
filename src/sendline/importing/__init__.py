"""CSV import: a feature with threads and worker processes, built on the store.

`rows` reads and checks a file (no database), `phones` classifies numbers in worker
processes, `batch` upserts one batch of rows (deciding with `existing`: how a row
matches and merges an existing contact) and fires the tag and list triggers of what it
added, and `importer` runs reading, classifying and writing overlapped.
"""
