# Scribe in a container: `scribe watch /repo` by default, `scribe worker /repo` for
# the bus's workers. Build from the repository root: docker build -t scribe .
# Pin the base image by digest too where builds must be reproducible.

# -- build: the wheels of Scribe and of everything it needs ------------------------
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- runtime: those wheels installed, no compiler, no sources, not root ------------
FROM python:3.11.14-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SCRIBE_LISTEN=0.0.0.0:9469
RUN groupadd --system --gid 10001 scribe \
    && useradd --system --uid 10001 --gid scribe --home-dir /home/scribe --create-home scribe
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/scribe-*.whl \
    && rm -rf /wheels
COPY deploy/healthcheck.py /usr/local/lib/scribe/healthcheck.py
WORKDIR /repo
USER 10001:10001
EXPOSE 9469
# Asks /healthz the way the settings serve it (HTTP, HTTPS, or HTTPS with a client
# certificate from HEALTHCHECK_CERT and HEALTHCHECK_KEY).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/scribe/healthcheck.py", "/healthz"]
ENTRYPOINT ["scribe"]
CMD ["watch", "/repo"]
