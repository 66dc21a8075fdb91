# syntax=docker/dockerfile:1
# Rotor operator image.
#
#   docker build -t rotor:dev .
#   docker run --rm rotor:dev --help
#
# The builder makes a wheel of the rotor-operator package and installs it, with its
# dependencies, into a virtualenv at /opt/rotor. The final image is the same Python base with
# that virtualenv only: no compilers, no build tools, no pip. It runs as UID 65532 and writes
# nothing outside /tmp, so it works with readOnlyRootFilesystem.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Build tools live in the builder's own Python; the runtime virtualenv gets no pip at all.
RUN pip install "pip>=24" "build>=1.2" \
 && python -m venv --without-pip /opt/rotor
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /wheels . \
 && pip --python /opt/rotor/bin/python install /wheels/*.whl \
 && /opt/rotor/bin/python -m compileall -q /opt/rotor/lib \
 && /opt/rotor/bin/rotor --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rotor" \
      org.opencontainers.image.description="Syncs and rotates secrets from Vault and AWS into Kubernetes Secrets" \
      org.opencontainers.image.source="https://github.com/rotor-dev/rotor" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# A named user for UID 65532, so tools that look the user up (getpass) find one.
RUN groupadd --gid 65532 rotor \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rotor
COPY --from=builder /opt/rotor /opt/rotor
ENV PATH=/opt/rotor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["rotor"]
CMD ["run"]
