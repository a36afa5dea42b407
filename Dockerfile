# The project image: every pipeline step and the model server run in it.
#
# Build with `inv build-push` (or `docker build .`). BASE_IMAGE defaults to the
# scikit-learn/SciPy notebook server image of Kubeflow 1.10; any image with
# Python >= 3.11 and the `venv` module works, e.g. a plain Debian/Python image
# (what the tests use). The original walkthrough's base still works where it can
# be pulled: --build-arg BASE_IMAGE=gcr.io/kubeflow-images-public/tensorflow-2.1.0-notebook-cpu:1.0.0
# (Python 3.6 there: install a newer Python first, as the package needs 3.11).
#
# Layers, cheapest to rebuild last: user + venv, extra CA certificates, the
# dependencies (exactly the versions in requirements.lock, so two builds of one
# commit install the same libraries), then the source (a code-only change
# rebuilds just that layer and the labels).
ARG BASE_IMAGE=kubeflownotebookswg/jupyter-scipy:v1.10.0
FROM ${BASE_IMAGE}

# Notebook images run as the non-root user jovyan (uid 1000, home /home/jovyan);
# a plain base gets the same user so both behave alike.
ARG NB_USER=jovyan
ARG NB_UID=1000
USER root

ENV HK_VENV=/opt/hello-kubeflow
# The venv comes first on PATH, so `python3` (what KFP's executor runs) and
# `python` resolve to it in every base.
ENV PATH=${HK_VENV}/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib

RUN set -eu; \
    if ! getent passwd "${NB_UID}" >/dev/null; then \
        useradd --create-home --uid "${NB_UID}" --shell /bin/bash "${NB_USER}"; \
    fi; \
    python3 -m venv "${HK_VENV}"

# Extra CA certificates (certs/*.crt, certs/*.pem; see certs/README.md) are
# added to the system bundle and trusted for the pip installs below only.
COPY certs/ /usr/local/share/hello-kubeflow/certs/

# Dependencies: requirements.lock pins every distribution the runtime `dependencies`
# and `build-system` requirements of pyproject.toml resolve to (scripts/lock_requirements.py
# writes it). --no-deps installs exactly those; `pip check` proves they are complete.
COPY requirements.lock /tmp/hk-build/requirements.lock
RUN set -eu; \
    extra="$(find /usr/local/share/hello-kubeflow/certs -type f \( -name '*.crt' -o -name '*.pem' \) | sort)"; \
    if [ -n "${extra}" ]; then \
        bundle=/tmp/hk-build/ca-bundle.pem; \
        cat $(ls /etc/ssl/certs/ca-certificates.crt 2>/dev/null) ${extra} > "${bundle}"; \
        export PIP_CERT="${bundle}" REQUESTS_CA_BUNDLE="${bundle}" SSL_CERT_FILE="${bundle}"; \
        echo "trusting extra CA certificates for pip: ${extra}"; \
    fi; \
    cd /tmp/hk-build; \
    python3 -m pip install --progress-bar off --no-deps --requirement requirements.lock; \
    python3 -m pip check; \
    rm -rf /tmp/hk-build

# The package itself: no dependency resolution, no network, no build isolation.
COPY pyproject.toml README.md /tmp/hk-build/
COPY hello_kubeflow/ /tmp/hk-build/hello_kubeflow/
RUN set -eu; \
    python3 -m pip install --progress-bar off --no-deps --no-build-isolation /tmp/hk-build; \
    rm -rf /tmp/hk-build; \
    python3 -c 'import hello_kubeflow'

USER ${NB_UID}
WORKDIR /tmp

# The default command is the model server, listening on every interface of the
# container; the model comes from a read-only mount, never from the image:
#   docker run -p 127.0.0.1:9000:9000 -v "$PWD/model:/mnt/model:ro" IMAGE
# Pipeline steps (kfp.local's Docker runner, Kubeflow Pipelines) override the
# command; the notebook image's entrypoint (s6 init) is reset so they run as given.
ENV HK_SERVE_HOST=0.0.0.0 \
    HK_SERVE_PORT=9000 \
    HK_MODEL_DIR=/mnt/model
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ping' % os.environ.get('HK_SERVE_PORT', '9000'), timeout=4)"]
ENTRYPOINT []
CMD ["python3", "-m", "hello_kubeflow.serving"]

# OCI labels last: `created` changes on every build and must not bust the cache
# of the layers above.
ARG BASE_IMAGE
ARG SOURCE=""
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="hello-kubeflow" \
      org.opencontainers.image.description="MNIST RandomForest: pipeline steps and model server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
