# syntax=docker/dockerfile:1
# gate's image: the locked dependencies (pip --require-hashes), gate itself, a non-root user, and nothing
# written outside the mounted volumes (/var/lib/gate/work, /var/lib/gate/store, /tmp), so the chart can run
# it with a read-only root file system. Entry point `gate`; the chart passes `operator` or `dashboard`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/gate \
 && /opt/gate/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY gate ./gate
RUN /opt/gate/bin/pip install --no-deps --no-build-isolation --no-index .
# The SLI library ships inside the package (gate.contract.sli looks there first).
COPY analyses /opt/gate/lib/python3.11/site-packages/gate/contract/analyses
# Byte-code compiled now: the root file system is read-only at run time.
RUN /opt/gate/bin/python -m compileall -q /opt/gate/lib/python3.11/site-packages

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 gate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin gate \
 && mkdir -p /var/lib/gate/work /var/lib/gate/store \
 && chown -R 10001:10001 /var/lib/gate
COPY --from=build /opt/gate /opt/gate
ENV PATH=/opt/gate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    GATE_WORKDIR=/var/lib/gate/work \
    GATE_OPERATOR_WORKDIR=/var/lib/gate/work
USER 10001:10001
WORKDIR /var/lib/gate
VOLUME ["/var/lib/gate/work", "/var/lib/gate/store", "/tmp"]
EXPOSE 8080 8081
ENTRYPOINT ["gate"]
CMD ["operator"]
