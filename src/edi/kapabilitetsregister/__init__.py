"""Kapabilitetsregister: which message specifications each communication party (HER-id) can Consume and Produce.

`specifications` (the data and recognising a message), `model` (parties, capabilities, overrides), `view` (the
in-memory read model and the check), `changes` (the change records that feed it), `store` (SQLAlchemy, Alembic
migrations in `migrations/`), `api` (FastAPI) and `cli` (`kapreg`).
"""
