"""Storage: SQLAlchemy models, Alembic migrations and one repository per aggregate.

Every repository except account creation and listing is built with a session and an
account id, and every query it issues is filtered by that account: a repository cannot
read or change another account's rows. Repositories never commit; the caller owns the
transaction (`with session_factory.begin() as session: ...`).
"""
