"""The one place settings come from: the environment and an optional `.env` file.

`Settings.from_env(environ)` takes the mapping as an argument so tests pass a
plain dict; `load_settings()` is what the tasks call. Every variable is listed
in `VARIABLES` (and documented in `.env.example`); a malformed value raises one
`SettingsError` naming every offending variable. The checks live in
`Settings` itself (`__post_init__`), so neither `replace` nor direct
construction can make an invalid one. Relative paths (`.env`, `outputs/`, any
path a variable names) are taken from the project root (`project.py`), not the
current directory. Secret values are never shown: `Settings.describe()` masks
them, and they are left out of `repr`. `.env` is UTF-8 or UTF-16 with a BOM (as
PowerShell writes it); a line that cannot be decoded or parsed is an error
naming the file and line, and an `HK_` name that is no setting (a typo such as
`HK_PRSET`) is warned about, with where it was set and the closest known name.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import io
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from hello_kubeflow.errors import SettingsError

MODES = ("local", "cluster")
PRESET_NAMES = ("default", "book")
MODEL_KINDS = ("forest", "mlp")
# The presets each kind of model has (hello_kubeflow.model.train.PRESETS_BY_MODEL builds them).
MODEL_PRESETS: dict[str, tuple[str, ...]] = {"forest": PRESET_NAMES, "mlp": ("default",)}
PROFILES = ("pipelines", "full")
SERVING_KINDS = ("auto", "seldon", "kserve")
DEFAULT_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MASK = "********"
# `HK_` names that the project's scripts and tests read, not settings of the tasks.
_READ_ELSEWHERE = ("HK_TEST_", "HK_CI_", "HK_BASE_SUITE", "HK_DEBIAN_MIRROR", "HK_ACTIONLINT_DIR")
# The byte-order marks a `.env` may start with, and how the rest is decoded.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

log = logging.getLogger(__name__)
# The most model server workers: each loads its own copy of the model.
MAX_SERVE_WORKERS = 32


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "hello-kubeflow"


@dataclass(frozen=True)
class Settings:
    """Every setting of the workflow, typed; build it with `from_env`."""

    # workflow
    mode: str = "local"
    output_dir: Path = Path("outputs")
    # data
    mnist_dir: Path | None = None
    cache_dir: Path = field(default_factory=_default_cache_dir)
    mnist_mirrors: tuple[str, ...] = DEFAULT_MNIST_MIRRORS
    download_timeout: float = 60.0
    # training
    model_kind: str = "forest"
    preset: str = "default"
    n_estimators: int | None = None
    seed: int = 42
    n_jobs: int = -1
    # image
    container_registry: str | None = None
    image_name: str = "hello-kubeflow"
    image_tag: str | None = None
    base_image: str | None = None
    pipeline_image: str | None = None
    extra_ca_certs: Path | None = None
    registry_username: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    docker_timeout: float = 600.0
    # serving and querying
    serve_host: str = "127.0.0.1"
    serve_port: int = 9000
    serve_workers: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    request_timeout: float = 30.0
    model_name: str = "mnist-classifier"
    model_dir: Path | None = None
    query_url: str | None = None
    query_timeout: float = 10.0
    query_deadline: float = 60.0
    query_wait: float | None = None
    access_wait: float = 120.0
    # cluster
    kubeconfig: Path | None = None
    kube_context: str | None = None
    kube_request_timeout: float = 30.0
    wait_namespaces: tuple[str, ...] = ()
    wait_timeout: float = 1800.0
    wait_crash_grace: float = 600.0
    profile: str = "pipelines"
    manifests_dir: Path | None = None
    kfp_version: str = "2.17.0"
    seldon_version: str = "1.17.1"
    kserve_version: str = "0.20.0"
    kubeflow_version: str = "26.03"
    serving: str = "auto"
    kfp_endpoint: str | None = None
    kfp_token: str | None = field(default=None, repr=False)
    kfp_cookie: str | None = field(default=None, repr=False)
    kubeflow_username: str | None = None
    kubeflow_password: str | None = field(default=None, repr=False)
    experiment: str = "hello-kubeflow"
    run_timeout: float = 3600.0
    run_unschedulable_grace: float = 300.0
    gateway_url: str | None = None
    namespace: str = "kubeflow"
    deployment_name: str = "mnist-classifier"
    # the notebook server (inv notebook)
    notebook_name: str = "hello-kubeflow"
    notebook_cpu: str = "1"
    notebook_memory: str = "2Gi"
    notebook_volume_size: str = "5Gi"
    notebook_port: int = 8888
    notebook_timeout: float = 600.0
    # where relative paths were resolved from: the checkout (None: no checkout, the cwd)
    project_root: Path | None = None

    def __post_init__(self) -> None:
        """Check and normalise every field through its variable's parser, as from the environment.

        Raises:
            SettingsError: naming every variable whose value is malformed.
        """
        problems: list[str] = []
        for var in VARIABLES:
            value = getattr(self, var.field)
            if value is None:
                continue
            text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
            try:
                object.__setattr__(self, var.field, var.parse(text.strip()))
            except ValueError as exc:
                problems.append(var.problem(var.env, text, exc))
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` over the values of a `.env` file.

        Args:
            environ: the environment (a plain dict in tests); `os.environ` if None.
            dotenv: a `.env` file to read first (skipped when missing or None).

        Raises:
            SettingsError: naming every variable whose value is malformed, or the
                `.env` line that cannot be decoded or parsed.
        """
        values: dict[str, str] = {}
        where: dict[str, str] = {}  # name -> where it was set, for the warning on a typo
        if dotenv is not None and dotenv.is_file():
            read, lines = _read_dotenv(dotenv)
            values.update(read)
            where.update({name: f"{dotenv} line {line}" for name, line in lines.items()})
        environment = os.environ if environ is None else environ
        values.update(environment)
        where.update(dict.fromkeys(environment, "the environment"))
        _warn_unknown(where)

        kwargs: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARIABLES:
            raw = values.get(var.env, "").strip()
            if not raw:
                continue
            try:
                kwargs[var.field] = var.parse(raw)
            except ValueError as exc:
                problems.append(var.problem(var.env, raw, exc))
        if problems:
            raise SettingsError(problems)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed, checked like the environment's.

        Raises:
            SettingsError: naming every variable whose new value is malformed.
        """
        return dataclasses.replace(self, **changes)

    def override(
        self, changes: Mapping[str, Any], flags: Mapping[str, str] | None = None
    ) -> Settings:
        """Return a copy with command-line values on top, text checked like the environment's.

        Args:
            changes: field name -> value; text and numbers (a port, a timeout) go
                through the field's parser, so `--port 70000` is refused like
                `HK_SERVE_PORT=70000`.
            flags: field name -> the command-line option that set it, for messages
                (default: `--field-name`).

        Raises:
            SettingsError: naming every option whose value is malformed.
        """
        parsers = {var.field: var for var in VARIABLES}
        typed: dict[str, Any] = {}
        problems: list[str] = []
        for name, value in changes.items():
            var = parsers.get(name)
            checked = isinstance(value, str | int | float) and not isinstance(value, bool)
            if var is None or not checked:
                typed[name] = value
                continue
            try:
                typed[name] = var.parse(str(value).strip())
            except ValueError as exc:
                flag = (flags or {}).get(name, f"--{name.replace('_', '-')}")
                problems.append(var.problem(flag, value, exc))
        if problems:
            raise SettingsError(problems)
        return dataclasses.replace(self, **typed)

    def describe(self) -> dict[str, str]:
        """Every variable and its value as a user may see it, secrets masked."""
        shown: dict[str, str] = {}
        for var in VARIABLES:
            value = getattr(self, var.field)
            if value is None or value == ():
                shown[var.env] = ""
            elif var.secret:
                shown[var.env] = MASK
            elif isinstance(value, tuple):
                shown[var.env] = ",".join(str(v) for v in value)
            else:
                shown[var.env] = str(value)
        return shown

    @property
    def server_url(self) -> str:
        """Where the query goes: `HK_QUERY_URL`, else the local server."""
        return self.query_url or f"http://{self.serve_host}:{self.serve_port}"


def load_settings(root: Path | None = None) -> Settings:
    """Settings from `os.environ` over the project root's `.env`: what every task starts with.

    Args:
        root: the project root (default: `project.project_root()`, found once
            from the current directory; the current directory outside a checkout).
            `.env` is read there and relative paths are taken from it.

    Raises:
        SettingsError: naming every variable whose value is malformed.
    """
    from hello_kubeflow.project import project_root

    root = root or project_root()
    base = root or Path.cwd()
    settings = Settings.from_env(None, base / ".env")
    return settings.replace(project_root=root, **rebased_paths(settings, base))


def _read_dotenv(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """A `.env` file's values, and the line each name is set on.

    Raises:
        SettingsError: the file cannot be read or decoded, or python-dotenv
            cannot parse one of its lines (naming the file and the line).
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
        raise SettingsError(
            [
                f"{path} line {line}: cannot be decoded as {encoding.upper()} (byte "
                f"0x{data[exc.start]:02x}); save the file as UTF-8"
            ]
        ) from None
    bindings = list(parse_stream(io.StringIO(text)))
    broken = [b.original.line for b in bindings if b.error]
    if broken:
        raise SettingsError(
            [
                f"{path} line {line}: python-dotenv cannot parse it; write NAME=value, "
                "quoting a value that holds spaces or #"
                for line in broken
            ]
        )
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


def rebased_paths(settings: Settings, base: Path) -> dict[str, Path]:
    """The path settings that are relative, taken from `base` instead of the cwd."""
    paths = {name: getattr(settings, name) for name in PATH_FIELDS}
    return {k: base / v for k, v in paths.items() if v is not None and not v.is_absolute()}


# ---- parsers: each raises ValueError with a message saying what is expected


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if maximum is not None and not (minimum or 0) <= value <= maximum:
            raise ValueError(f"expected a whole number from {minimum or 0} to {maximum}")
        if minimum is not None and value < minimum:
            raise ValueError(f"expected a whole number >= {minimum}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 30 or 2.5") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("expected a positive, finite number of seconds")
    return value


def _wait_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 0 or 30") from None
    if not 0 <= value < float("inf"):
        raise ValueError("expected 0 or a positive, finite number of seconds")
    return value


def _port_from(lowest: int, note: str = "") -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _int()(raw)
        if not lowest <= value <= 65535:
            raise ValueError(f"expected a port number between 1 and 65535{note}")
        return value

    return parse


_port = _port_from(1)
_listen_port = _port_from(0, " (0: any free port)")


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL, e.g. http://localhost:8080")
    return raw.rstrip("/")


def _urls(raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        _url(url)
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _text(raw: str) -> str:
    return raw


_REGISTRY = re.compile(
    r"^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]+)?"
    r"(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)


def _registry(raw: str) -> str:
    """A registry host with an optional namespace: `localhost:5000`, `quay.io/me`."""
    value = raw.rstrip("/")
    if "://" in value:
        raise ValueError("drop the scheme: expected e.g. localhost:5000 or quay.io/me")
    if not _REGISTRY.match(value):
        raise ValueError(
            "expected a lowercase registry address with no tag, e.g. localhost:5000, "
            "quay.io/me or ghcr.io/org"
        )
    return value


_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _quantity(raw: str) -> str:
    """A Kubernetes resource quantity: `500m`, `1`, `2Gi`, `1.5`.

    A pattern, not `kubernetes.utils.parse_quantity` (which the cluster code uses
    to compute with quantities): importing the Kubernetes client costs every
    task about a second, and this only checks the text.
    """
    if not _QUANTITY.match(raw):
        raise ValueError("expected a Kubernetes quantity, e.g. 500m or 1 (CPU), 2Gi (memory)")
    return raw


def _dns_label(raw: str) -> str:
    """A Kubernetes object name usable in a URL: lowercase letters, digits, '-'."""
    if not _DNS_LABEL.match(raw):
        raise ValueError(
            "expected a lowercase name of letters, digits and '-' (at most 63), e.g. hello-kubeflow"
        )
    return raw


def _namespaces(raw: str) -> tuple[str, ...]:
    """Comma-separated Kubernetes namespaces: `kubeflow, kserve`."""
    return tuple(_dns_label(name) for name in _names(raw))


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the field it sets, how it is parsed."""

    env: str
    field: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False

    def problem(self, where: str, value: object, exc: ValueError) -> str:
        """`where=value: why` for a refused value, the value masked if it is a secret."""
        return f"{where}={MASK if self.secret else repr(value)}: {exc}"


VARIABLES: tuple[Variable, ...] = (
    Variable("HK_MODE", "mode", _choice(*MODES), "local or cluster"),
    Variable("HK_OUTPUT_DIR", "output_dir", _path, "where runs, models and metrics go"),
    Variable("MNIST_DIR", "mnist_dir", _path, "a folder holding the four MNIST IDX files"),
    Variable("HK_CACHE_DIR", "cache_dir", _path, "where downloaded MNIST files are kept"),
    Variable("HK_MNIST_MIRRORS", "mnist_mirrors", _urls, "comma-separated MNIST mirrors"),
    Variable("HK_DOWNLOAD_TIMEOUT", "download_timeout", _seconds, "seconds per download request"),
    Variable("HK_MODEL_KIND", "model_kind", _choice(*MODEL_KINDS), "model to train"),
    Variable("HK_PRESET", "preset", _choice(*PRESET_NAMES), "training preset"),
    Variable("HK_N_ESTIMATORS", "n_estimators", _int(1), "number of trees (overrides preset)"),
    Variable("HK_SEED", "seed", _int(0), "random seed for sampling and training"),
    Variable("HK_N_JOBS", "n_jobs", _int(-1), "training processes (-1: all cores)"),
    Variable("CONTAINER_REGISTRY", "container_registry", _registry, "where images are pushed"),
    Variable("HK_IMAGE_NAME", "image_name", _text, "image repository name"),
    Variable("HK_IMAGE_TAG", "image_tag", _text, "image tag (default: from git)"),
    Variable("HK_BASE_IMAGE", "base_image", _text, "Dockerfile BASE_IMAGE"),
    Variable("HK_PIPELINE_IMAGE", "pipeline_image", _text, "image the pipeline steps run in"),
    Variable("HK_EXTRA_CA_CERTS", "extra_ca_certs", _path, "CA bundle trusted in the build"),
    Variable("HK_REGISTRY_USERNAME", "registry_username", _text, "registry user"),
    Variable("HK_REGISTRY_PASSWORD", "registry_password", _text, "registry password", secret=True),
    Variable("HK_DOCKER_TIMEOUT", "docker_timeout", _seconds, "seconds per Docker API call"),
    Variable("HK_SERVE_HOST", "serve_host", _text, "address the model server binds"),
    Variable(
        "HK_SERVE_PORT", "serve_port", _listen_port, "port of the model server (0: any free one)"
    ),
    Variable(
        "HK_SERVE_WORKERS",
        "serve_workers",
        _int(1, MAX_SERVE_WORKERS),
        f"model server worker processes, 1 to {MAX_SERVE_WORKERS}",
    ),
    Variable("HK_MAX_BODY_BYTES", "max_body_bytes", _int(1), "largest request body accepted"),
    Variable(
        "HK_REQUEST_TIMEOUT",
        "request_timeout",
        _seconds,
        "seconds a client has to send the server a whole request",
    ),
    Variable("HK_MODEL_NAME", "model_name", _text, "model name in the V2 protocol"),
    Variable(
        "HK_MODEL_DIR", "model_dir", _path, "model the server loads (default: latest inv train)"
    ),
    Variable("HK_QUERY_URL", "query_url", _url, "where inv query sends requests"),
    Variable("HK_QUERY_TIMEOUT", "query_timeout", _seconds, "seconds per query request"),
    Variable("HK_QUERY_DEADLINE", "query_deadline", _seconds, "seconds to keep retrying"),
    Variable(
        "HK_QUERY_WAIT",
        "query_wait",
        _wait_seconds,
        "seconds to wait for a server that is not listening yet (default: 0 for a local "
        "URL, HK_QUERY_DEADLINE otherwise)",
    ),
    Variable(
        "HK_ACCESS_WAIT",
        "access_wait",
        _seconds,
        "seconds to wait for Istio to let requests through to a new InferenceService's "
        "AuthorizationPolicy (cluster mode, KServe)",
    ),
    Variable("KUBECONFIG", "kubeconfig", _path, "kubeconfig file"),
    Variable("HK_KUBE_CONTEXT", "kube_context", _text, "kubeconfig context"),
    Variable(
        "HK_KUBE_REQUEST_TIMEOUT", "kube_request_timeout", _seconds, "seconds per API request"
    ),
    Variable("HK_WAIT_NAMESPACES", "wait_namespaces", _namespaces, "namespaces to wait for"),
    Variable("HK_WAIT_TIMEOUT", "wait_timeout", _seconds, "seconds to wait for pods"),
    Variable(
        "HK_WAIT_CRASH_GRACE",
        "wait_crash_grace",
        _seconds,
        "seconds a pod may crash-loop while others still start, before it fails the wait",
    ),
    Variable("HK_PROFILE", "profile", _choice(*PROFILES), "what inv setup deploys"),
    Variable(
        "HK_MANIFESTS_DIR",
        "manifests_dir",
        _path,
        "rendered manifests to install from (air-gapped)",
    ),
    Variable("HK_KFP_VERSION", "kfp_version", _text, "Kubeflow Pipelines version"),
    Variable("HK_SELDON_VERSION", "seldon_version", _text, "Seldon Core version"),
    Variable("HK_KSERVE_VERSION", "kserve_version", _text, "KServe version"),
    Variable("HK_KUBEFLOW_VERSION", "kubeflow_version", _text, "Kubeflow manifests version"),
    Variable("HK_SERVING", "serving", _choice(*SERVING_KINDS), "serving system"),
    Variable("HK_KFP_ENDPOINT", "kfp_endpoint", _url, "Kubeflow Pipelines API address"),
    Variable("HK_KFP_TOKEN", "kfp_token", _text, "bearer token", secret=True),
    Variable("HK_KFP_COOKIE", "kfp_cookie", _text, "Dex session cookie", secret=True),
    Variable("HK_KUBEFLOW_USERNAME", "kubeflow_username", _text, "Dex login (email)"),
    Variable("HK_KUBEFLOW_PASSWORD", "kubeflow_password", _text, "Dex password", secret=True),
    Variable("HK_EXPERIMENT", "experiment", _text, "KFP experiment name"),
    Variable("HK_RUN_TIMEOUT", "run_timeout", _seconds, "seconds to follow a run"),
    Variable(
        "HK_RUN_UNSCHEDULABLE_GRACE",
        "run_unschedulable_grace",
        _seconds,
        "seconds a run's step pod may stay Unschedulable before the run is given up",
    ),
    Variable("HK_GATEWAY_URL", "gateway_url", _url, "the cluster's gateway address"),
    Variable("HK_NAMESPACE", "namespace", _dns_label, "namespace of the deployed model"),
    Variable("HK_DEPLOYMENT_NAME", "deployment_name", _dns_label, "name of the deployed model"),
    Variable("HK_NOTEBOOK_NAME", "notebook_name", _dns_label, "name of the notebook server"),
    Variable("HK_NOTEBOOK_CPU", "notebook_cpu", _quantity, "CPU the notebook server requests"),
    Variable(
        "HK_NOTEBOOK_MEMORY", "notebook_memory", _quantity, "memory the notebook server requests"
    ),
    Variable(
        "HK_NOTEBOOK_VOLUME_SIZE",
        "notebook_volume_size",
        _quantity,
        "size of the notebook's workspace volume",
    ),
    Variable("HK_NOTEBOOK_PORT", "notebook_port", _port, "local notebook server's port"),
    Variable(
        "HK_NOTEBOOK_TIMEOUT", "notebook_timeout", _seconds, "seconds to wait for the notebook"
    ),
)

# The settings that are paths: `load_settings` takes the relative ones from the project root.
PATH_FIELDS: tuple[str, ...] = tuple(var.field for var in VARIABLES if var.parse is _path)
