"""otf-dagster: live sports games tracked by a Dagster Task Manager and TaskRunners."""

__version__ = "0.1.0"
