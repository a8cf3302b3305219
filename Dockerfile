# The code location's image: the otf-dagster wheel and its pinned Dagster family. compose.yaml
# runs the code server, the daemon and the webserver from this one image, each with its own
# command (the webserver and the daemon load no project code: they talk to the code server).
# The commands are the ones otf_dagster_tests/test_split_deployment.py runs from the wheel.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otf_dagster ./otf_dagster
COPY sql ./sql
COPY deploy ./deploy
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# DAGSTER_HOME holds the packaged dagster.yaml and workspace.yaml (deploy/ in the checkout).
ENV DAGSTER_HOME=/opt/dagster/dagster_home
RUN otf dagster-home "$DAGSTER_HOME"
WORKDIR /opt/dagster/app

# The code server; runs it launches execute in this container (Dagster's default run launcher).
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "otf_dagster.definitions", "-a", "defs", "--location-name", "otf_dagster"]
