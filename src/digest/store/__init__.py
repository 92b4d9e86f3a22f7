"""All SQL lives in this package: one module per entity, plain functions over a connection."""

from digest.store.db import connect, parse_ts, transaction, ts, utcnow

__all__ = ["connect", "parse_ts", "transaction", "ts", "utcnow"]
