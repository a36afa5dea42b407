# The project image: a Kubeflow notebook server with the project inside. One
# image is both the development environment (started as a Kubeflow Notebook, it
# serves Jupyter on 8888 under $NB_PREFIX, with the project as the kernel
# `hello-kubeflow`) and what every pipeline step and the model server run in.
#
# Build with `inv build-push` (or `docker build .`). BASE_IMAGE defaults to the
# scikit-learn/SciPy notebook server image that Kubeflow 26.03's notebook
# spawner offers (jupyter-web-app's spawner_ui_config.yaml; Kubeflow publishes
# its notebook images on ghcr.io since v1.10.0, no longer on Docker Hub). Any
# image with Python >= 3.11 and the `venv` module builds (e.g. a plain Debian/Python image),
# but only a notebook image serves Jupyter. The original walkthrough's base still
# works where it can be pulled: --build-arg BASE_IMAGE=gcr.io/kubeflow-images-public/tensorflow-2.1.0-notebook-cpu:1.0.0
# (Python 3.6 there: install a newer Python first, as the package needs 3.11).
#
# The notebook contract (kubeflow/kubeflow v1.10.0,
# components/example-notebook-servers/base/Dockerfile and jupyter/Dockerfile) is
# kept: the base's ENTRYPOINT (s6-overlay's /init, which starts Jupyter as a
# service) and its default command are never set here, the image runs as jovyan
# (uid 1000, home /home/jovyan), and nothing the project needs lives under
# /home/jovyan, where Kubeflow mounts the workspace volume. So pipeline steps,
# `inv serve --container` and the cluster's model servers name their command.
#
# Layers, cheapest to rebuild last: user + venv, extra CA certificates, the
# dependencies (exactly the versions in requirements.lock, so two builds of one
# commit install the same libraries), the Jupyter kernel, then the source (a
# code-only change rebuilds just that layer and the labels).
ARG BASE_IMAGE=ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0
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

# The project's venv as a Jupyter kernel named `hello-kubeflow`. Its kernelspec
# goes under /usr/local/share/jupyter/kernels, which every Jupyter on the machine
# searches (jupyter_core's system path), not under /home/jovyan, which the
# workspace volume hides.
RUN python3 -m ipykernel install --prefix /usr/local --name hello-kubeflow \
        --display-name "Python 3 (hello-kubeflow)"

# The package itself: no dependency resolution, no network, no build isolation.
COPY pyproject.toml README.md /tmp/hk-build/
COPY hello_kubeflow/ /tmp/hk-build/hello_kubeflow/
RUN set -eu; \
    python3 -m pip install --progress-bar off --no-deps --no-build-isolation /tmp/hk-build; \
    rm -rf /tmp/hk-build; \
    python3 -c 'import hello_kubeflow'

# Back to the notebook user; no ENTRYPOINT, CMD or WORKDIR: the base's stand.
USER ${NB_UID}

# OCI labels last: `created` changes on every build and must not bust the cache
# of the layers above.
ARG BASE_IMAGE
ARG SOURCE=""
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="hello-kubeflow" \
      org.opencontainers.image.description="MNIST RandomForest: notebook server, pipeline steps and model server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
