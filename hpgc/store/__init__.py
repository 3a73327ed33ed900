"""All persistent state: one SQLite file (database.py's Store), a module per table (processes, jobs with
their events, the callbacks' outbox), the schema's migrations (schema.py) and the rows' encoding (sql.py).
Other packages use what is exported here."""

from hpgc.store.database import Store

__all__ = ["Store"]
