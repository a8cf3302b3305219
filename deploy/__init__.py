"""What a deployment runs with: the Dagster instance settings (``dagster.yaml``) and the
workspace that points the webserver and the daemon at the code server (``workspace.yaml``).

This folder is packaged as ``otf_dagster.deploy`` (see pyproject.toml), so the wheel carries
the same files a checkout has: ``otf dev`` and ``otf dagster-home`` copy them into a
``DAGSTER_HOME``, and the Docker image does the same.
"""
