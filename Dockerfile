# Production image: the service against an external PostGIS (DATABASE_URL is required here;
# the embedded cluster is a development convenience and is not in the image).
FROM node:20-bookworm-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 territory
WORKDIR /srv/territory

COPY pyproject.toml setup.py README.md alembic.ini ./
COPY third_party ./third_party
COPY app ./app
COPY spatial ./spatial
COPY migrations ./migrations
COPY data ./data
COPY --from=assets /assets/node_modules ./node_modules
# Editable: migrations/, alembic.ini and data/ are found next to the code. g++ builds the one
# compiled part (spatial/_clipper, Clipper2) and leaves with its build.
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
    && pip install -e . \
    && apt-get purge -y --auto-remove g++ && rm -rf /var/lib/apt/lists/* \
    && chown -R territory /srv/territory

USER territory
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"

# /metrics sums every worker through prometheus_client's multiprocess files, cleared at start.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/territory-metrics
# Migrations run before the server starts; several replicas may start at once (advisory lock).
CMD ["sh", "-c", "mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && territory db upgrade && rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && territory serve --host 0.0.0.0 --port 8000 --workers ${WORKERS:-2}"]
