# fraudops API image. It installs exactly what `make setup` installs: `uv sync --frozen` from uv.lock,
# with the same uv version as the Makefile (tests/unit/test_container.py checks both), minus the dev
# group. The venv lives at /app/.venv in both stages: venv scripts embed absolute paths.
#
#   docker build -t fraudops .
#   docker run --rm -p 127.0.0.1:8000:8000 -e FRAUDOPS_ADMIN_API_KEY=... -e FRAUDOPS_FEEDBACK_API_KEY=... fraudops
#
# The image serves the API (`fraudops serve --host 0.0.0.0 --port 8000`); compose.yaml reuses it for
# the MLflow and Prefect servers and for the services that run the flows (setup, worker, demo) in a
# shared workspace volume, which deploy/compose/workspace.sh makes a git + DVC project on first use.
#
# No `# syntax=` line: it makes BuildKit pull a frontend image, which fails offline. `RUN --mount`
# needs BuildKit (Compose v2 and `DOCKER_BUILDKIT=1 docker build` use it). PYTHON_IMAGE is the base of
# both stages: python:3.11-slim, or the stand-in deploy/images/build-stand-ins.sh builds from Debian
# packages where no container registry is reachable (it also carries a proxy's CA, if given).

ARG PYTHON_IMAGE=python:3.11-slim
# Same pin as UV_VERSION in the Makefile.
ARG UV_VERSION=0.13.8

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION

RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

ENV UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself (installed editable, as `make setup` does; the runtime stage puts the
# sources at the same /app paths).
COPY README.md ./
COPY core ./core
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
COPY fraudops ./fraudops
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# The test suites some libraries ship inside their package (about 180 MB; none is imported at run
# time). Only these libraries' own test folders: elsewhere a module named `tests` can be an API.
RUN cd /app/.venv/lib/python3*/site-packages \
    && for lib in pandas numpy scipy sklearn statsmodels matplotlib pyarrow networkx onnx; do \
         find "$lib" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + ; \
       done

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# git: DVC versions data inside a git repository (the workspace); nothing else is installed at run time
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 fraudops \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/fraudops \
       --shell /usr/sbin/nologin fraudops

ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    OMP_WAIT_POLICY=PASSIVE \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    DVC_NO_ANALYTICS=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_HOME=/home/fraudops/.prefect \
    FRAUDOPS_PROJECT_DIR=/app \
    FRAUDOPS_ENVIRONMENT=production

WORKDIR /app

# Code and config are root-owned, read-only for the service user.
COPY --from=builder /app/.venv /app/.venv
COPY pyproject.toml README.md params.yaml dvc.yaml prefect.yaml .dvcignore .gitignore ./
COPY .dvc/config .dvc/.gitignore ./.dvc/
COPY data/.gitignore ./data/
COPY deploy/compose/workspace.sh /usr/local/bin/fraudops-workspace
COPY deploy/prefect/worker.sh /usr/local/bin/fraudops-worker
COPY core ./core
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
COPY fraudops ./fraudops

# Writable state only: stores/ (MLflow sqlite fallback, prediction log, Prefect home), data/, reports/.
# /app stays root-owned: the image runs in production, where the admin key comes from the environment.
# /workspace: the volume compose's flow services share (deploy/compose/workspace.sh); a new named
# volume takes this owner, so the service user can write it.
RUN install -d -o 10001 -g 10001 /app/stores /app/stores/mlflow /app/stores/prefect /app/data /app/reports \
        /workspace

USER 10001:10001

EXPOSE 8000

# No curl in the slim image: probe liveness with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

CMD ["fraudops", "serve", "--host", "0.0.0.0", "--port", "8000"]
