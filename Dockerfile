# The Tenantry image: the same command line (`tenantry`) for the web and the worker processes.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TENANTRY_DATA_DIR=/data

WORKDIR /app

# Dependencies first, exactly as locked (hashes checked), so code changes reuse this layer.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# The project: its packages, the layer migrations and the static files it serves.
COPY pyproject.toml ./
COPY tenantry ./tenantry
COPY services ./services
COPY web ./web
COPY workers ./workers
COPY layers ./layers
COPY static ./static
RUN pip install --no-deps --no-build-isolation -e .

RUN useradd --system --create-home --uid 10001 --user-group tenantry \
    && mkdir -p /data \
    && chown tenantry:tenantry /data
USER tenantry

EXPOSE 8080
CMD ["tenantry", "serve", "--host", "0.0.0.0", "--port", "8080"]
