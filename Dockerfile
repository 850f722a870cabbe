# syntax=docker/dockerfile:1.7
# mcp-service image: `docker build -t mcp-service .`
#
# Two stages: `build` resolves the locked dependencies with uv and installs the project into
# /app/.venv; `runtime` copies only that venv onto a slim Python, owned by root and run as an
# unprivileged user, so the application cannot modify its own code. Nothing in the image is
# secret: settings (Cognito pool, REDIS_URL, TOKEN_CACHE_SECRET) arrive as environment
# variables at run time (ECS injects them from Secrets Manager).
#
# Runs with a read-only root filesystem: bytecode is compiled at build time, HOME and every
# scratch path point at /tmp (mount a tmpfs there), and /var/lib/mcp-service is the one
# directory meant for a volume (the embedded issuer's dev key in docker-compose).

ARG PYTHON_VERSION=3.13
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first, from the lock file alone, so code changes do not invalidate this layer.
# The lock covers the uv workspace, so the example member's metadata (not its code, which the
# image does not install) is needed to check it.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=examples/team-server/pyproject.toml,target=examples/team-server/pyproject.toml \
    uv sync --locked --no-dev --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY examples/team-server/pyproject.toml ./examples/team-server/
COPY mcp_service ./mcp_service
COPY cache ./cache
COPY observability ./observability
# The project itself, as a wheel (not editable): the runtime stage needs no source tree.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 mcp \
    && useradd --system --uid 10001 --gid mcp --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin mcp \
    && install -d -o mcp -g mcp -m 0700 /var/lib/mcp-service
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    APP_ENV=production \
    LOCAL_ISSUER_KEY_FILE=/var/lib/mcp-service/issuer-key.pem
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Liveness of the process only (/healthz answers without Redis or the IdP); load balancers
# use /readyz. Slim images have no curl: the standard library does the request.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["mcp-service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
