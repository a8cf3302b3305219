"""Which deployment this Dagster instance is, for the task database's leases.

A deployment is one Dagster instance (its own storage, daemon and Task Manager sensor). Its
id is made once and kept in Dagster's own key-value storage, so it survives restarts and
every process of the instance (daemon, code server, run workers) reads the same one;
``OTF_DEPLOYMENT_NAME`` gives it a name people read (default: the host name).
"""

from __future__ import annotations

import socket
import uuid

import dagster as dg

from otf_dagster import settings
from otf_dagster.core.manager import Deployment

_KEY = "otf/deployment_id"


def deployment_of(instance: dg.DagsterInstance) -> Deployment:
    storage = instance.run_storage
    found = storage.get_cursor_values({_KEY}).get(_KEY)
    if not found:
        storage.set_cursor_values({_KEY: f"dep-{uuid.uuid4().hex[:12]}"})
        found = storage.get_cursor_values({_KEY})[_KEY]  # whichever write won a race
    name = settings.DEPLOYMENT_NAME.read() or socket.gethostname()
    return Deployment(id=found, name=name[:100])
