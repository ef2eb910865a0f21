# syntax=docker/dockerfile:1
# Gatehouse: multi-stage build with uv; the runtime image holds no build tools and runs as an
# unprivileged user. Production by default: the server refuses to start without a strong
# SECRET_KEY (pass it with -e SECRET_KEY=... or a secret manager).
#
#   docker build -t gatehouse .
#   docker run -p 8000:8000 -e SECRET_KEY="$(python -c 'import secrets;print(secrets.token_urlsafe(48))')" gatehouse
#
# Without DATABASE_URL the embedded SQLite file lives in the /data volume; docker-compose.yml
# runs it with PostgreSQL and Redis.

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.8

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- build: resolve and install the locked-by-pin dependencies into /app/.venv -------------
FROM python:${PYTHON_VERSION}-slim AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first (cached layer while only the code changes). Every dependency is pinned
# exactly in pyproject.toml.
COPY pyproject.toml README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --no-install-project
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev

# ---- runtime -------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    DOCS_ENABLED=true \
    LOG_JSON=true
RUN groupadd --system --gid 10001 gatehouse \
    && useradd --system --uid 10001 --gid gatehouse --home-dir /data --shell /usr/sbin/nologin gatehouse \
    && mkdir -p /data && chown gatehouse:gatehouse /data
COPY --from=build --chown=root:root /app /app
# The working directory is where the embedded SQLite file (gatehouse.db) is created.
WORKDIR /data
VOLUME ["/data"]
USER gatehouse:gatehouse
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
# `serve` applies migrations and the idempotent seed, then starts uvicorn.
# WEB_CONCURRENCY sets the number of worker processes (share state through REDIS_URL).
ENTRYPOINT ["gatehouse"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
