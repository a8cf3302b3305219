"""The task database: the store (``TaskStore``), its SQL, connections and migrations.

The one public way in is :class:`TaskStore`; the modules beside it hold the SQL work as
functions on a connection, for callers that combine several in one transaction.
"""

from otf_dagster.core.store.polls import EVENTS_LOCK_KEY
from otf_dagster.core.store.queries import query
from otf_dagster.core.store.scheduling import task_id_for
from otf_dagster.core.store.store import TaskStore, utcnow

__all__ = ["EVENTS_LOCK_KEY", "TaskStore", "query", "task_id_for", "utcnow"]
