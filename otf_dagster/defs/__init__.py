"""The Dagster adapters: assets, jobs, partitions, resources, schedules and sensors.

Thin layers over ``otf_dagster.core``; ``otf_dagster.definitions`` assembles them.
"""
