"""All persistent state: one SQLite file (database.py's Store), a module per table (processes, jobs with
their events, the callbacks' outbox), the schema's migrations (schema.py), the rows' encoding (sql.py) and
what each row holds (rows.py). Other packages use what is exported here."""

from hpgc.store.database import Store

__all__ = ["Store"]
