# meshgov policy service. Build: docker build -t meshgov .   Run: see docker-compose.yml.
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first (cached layer), then the package itself.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# git: `meshgov check --against REF` and `meshgov policy impact --against REV` read revisions.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 meshgov \
    && mkdir -p /data \
    && chown meshgov /data
COPY --from=build /install /usr/local
WORKDIR /app
COPY policies ./policies
COPY examples ./examples
USER meshgov
# Every setting is also a MESHGOV_* variable (docs/deploy.md). State lives in /data by default.
ENV MESHGOV_HOST=0.0.0.0 \
    MESHGOV_PORT=8181 \
    MESHGOV_POLICIES_DIR=/app/policies \
    MESHGOV_STORE_URL=sqlite:////data/meshgov.db \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8181
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8181/health', timeout=2); sys.exit(0)"
ENTRYPOINT ["meshgov", "serve"]
