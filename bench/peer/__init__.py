"""The durable peer: FastAPI + Procrastinate on PostgreSQL, as its documentation sets it up.

A submit is one transactional INSERT into `procrastinate_jobs` (with its `deferred` event,
written by the schema's trigger); each worker records `started` and `succeeded` in SQL.
No broker, no accounts, no live streams. See bench/README.md for exactly what runs.
"""
