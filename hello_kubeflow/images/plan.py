"""What an image build will do, decided and validated before any engine is contacted."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hello_kubeflow.errors import SettingsError
from hello_kubeflow.images.lock import LABEL_PREFIX, LOCK_FILE, MODEL_LIBRARIES, version_labels
from hello_kubeflow.project import require_checkout
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

GIT_TIMEOUT = 10.0
FALLBACK_TAG = "latest"
DOCKERFILE = "Dockerfile"
_NAME = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_BASE_DEFAULT = re.compile(r"^\s*ARG\s+BASE_IMAGE=(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class BuildPlan:
    """One build (and push) of the project image, fully decided."""

    context: Path
    repository: str
    tag: str
    push: bool
    registry: str | None
    build_args: dict[str, str] = field(default_factory=dict)
    extra_ca_certs: Path | None = None
    dockerfile: str = DOCKERFILE
    labels: dict[str, str] = field(default_factory=dict)
    dockerfile_base: str = ""
    """The Dockerfile's own `ARG BASE_IMAGE=` default ("": it has none)."""

    @property
    def image(self) -> str:
        """The image reference built and pushed: `repository:tag`."""
        return f"{self.repository}:{self.tag}"

    @property
    def base_image(self) -> str:
        """The base the build starts FROM: the one chosen, else the Dockerfile's default."""
        return self.build_args.get("BASE_IMAGE") or self.dockerfile_base

    def as_dict(self) -> dict[str, Any]:
        """The plan as a JSON-serialisable dict (what `--dry-run` prints)."""
        return {
            "image": self.image,
            "repository": self.repository,
            "tag": self.tag,
            "registry": self.registry,
            "push": self.push,
            "context": str(self.context),
            "dockerfile": self.dockerfile,
            "build_args": dict(self.build_args),
            "base_image": self.base_image or None,
            "extra_ca_certs": str(self.extra_ca_certs) if self.extra_ca_certs else None,
            "labels": dict(self.labels),
        }

    def describe(self) -> str:
        """The plan as a person reads it."""
        lines = [
            f"image:   {self.image}",
            f"context: {self.context} ({self.dockerfile})",
            f"base:    {self._base()}",
            f"push:    {self._push_target()}",
        ]
        if self.extra_ca_certs:
            lines.append(f"extra CA certificates: {self.extra_ca_certs}")
        pinned = [
            f"{library} {self.labels[f'{LABEL_PREFIX}.version.{library}']}"
            for library in MODEL_LIBRARIES
            if f"{LABEL_PREFIX}.version.{library}" in self.labels
        ]
        if pinned:
            lines.append(f"locked:  {', '.join(pinned)} ({LOCK_FILE})")
        return "\n".join(lines)

    def _base(self) -> str:
        if self.build_args.get("BASE_IMAGE") or not self.dockerfile_base:
            return self.base_image or "(the Dockerfile's FROM)"
        return f"{self.dockerfile_base} (the Dockerfile default)"

    def _push_target(self) -> str:
        if not self.push:
            return "no (build only)"
        if self.registry:
            return f"to {self.registry}"
        return (
            "nowhere yet: CONTAINER_REGISTRY is not set (set it, e.g. localhost:5000, "
            "before building for real, or build only with --no-push)"
        )


def _naming_problems(image_name: str, tag: str, ca: Path | None) -> list[str]:
    """What is wrong with the image's name, its tag and the extra CA file, each with its fix."""
    problems = []
    if not _NAME.match(image_name):
        problems.append(
            f"HK_IMAGE_NAME={image_name!r}: expected a lowercase image name "
            "such as hello-kubeflow or team/hello-kubeflow"
        )
    if not _TAG.match(tag):
        problems.append(
            f"HK_IMAGE_TAG (or --tag)={tag!r}: expected letters, digits, '_', '.' "
            "or '-' (at most 128, not starting with '.' or '-')"
        )
    problem = _pem_problem(ca) if ca is not None else ""
    if problem:
        problems.append(f"HK_EXTRA_CA_CERTS={str(ca)!r}: {problem}")
    return problems


def plan_build(
    settings: Settings,
    *,
    push: bool = True,
    tag: str = "",
    base_image: str = "",
    context: Path | None = None,
    dry_run: bool = False,
) -> BuildPlan:
    """Decide the build: validate the registry, name and tag; derive the labels.

    Args:
        settings: the workflow settings (registry, image name/tag, base image, CA).
        push: whether the image will be pushed (then a registry is required).
        tag: the tag (default: `HK_IMAGE_TAG`, else from git).
        base_image: the Dockerfile's BASE_IMAGE (default: `HK_BASE_IMAGE`, else its own).
        context: the build context (default: the project checkout).
        dry_run: only show the plan: a missing registry is shown, not an error.

    Raises:
        SettingsError: no registry (pushing for real); name, tag or CA file unusable.
    """
    root = (context or require_checkout(settings.project_root, "build-push")).resolve()
    registry = settings.container_registry or None  # its form was checked by Settings
    if registry is None and push and not dry_run:
        raise SettingsError(
            [
                "CONTAINER_REGISTRY is not set: name the registry to push to, e.g. "
                "CONTAINER_REGISTRY=localhost:5000 (a local registry), quay.io/me or "
                "ghcr.io/org (in the environment or .env); or build only with --no-push"
            ]
        )
    chosen_tag = tag or settings.image_tag or default_tag(root)
    problems = _naming_problems(settings.image_name, chosen_tag, settings.extra_ca_certs)
    if problems:
        raise SettingsError(problems)
    repository = f"{registry}/{settings.image_name}" if registry else settings.image_name
    args = {
        "SOURCE": _without_credentials(_git(root, "config", "--get", "remote.origin.url")),
        "REVISION": _git(root, "rev-parse", "HEAD"),
        "CREATED": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    chosen_base = base_image or settings.base_image
    if chosen_base:
        args["BASE_IMAGE"] = chosen_base
    lock = root / LOCK_FILE
    return BuildPlan(
        context=root,
        repository=repository,
        tag=chosen_tag,
        push=push,
        registry=registry,
        build_args=args,
        extra_ca_certs=settings.extra_ca_certs,
        # The project's Dockerfile installs the lock; another context may have none.
        labels=version_labels(lock) if lock.is_file() else {},
        dockerfile_base=dockerfile_base(root / DOCKERFILE),
    )


def dockerfile_base(dockerfile: Path) -> str:
    """The default of `ARG BASE_IMAGE=...` in `dockerfile` ("": no such file or default)."""
    try:
        found = _BASE_DEFAULT.search(dockerfile.read_text())
    except OSError:
        return ""
    return found.group(1) if found else ""


def registry_host(repository: str) -> str:
    """The registry part of a repository (`quay.io/me/x` -> `quay.io`)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def default_tag(root: Path) -> str:
    """The short git commit of `root`, `-dirty` with changes; `latest` outside a checkout."""
    commit = _git(root, "rev-parse", "--short", "HEAD")
    if not commit:
        log.warning("%s is not a git checkout: tagging the image %r", root, FALLBACK_TAG)
        return FALLBACK_TAG
    dirty = bool(_git(root, "status", "--porcelain"))
    return f"{commit}-dirty" if dirty else commit


def _git(root: Path, *args: str) -> str:
    """A git command's output in `root`, or "" when git or the checkout is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _without_credentials(url: str) -> str:
    """Drop `user:password@` from a remote URL: a label must never carry a secret."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _pem_problem(path: Path) -> str | None:
    """Why `path` is not a PEM bundle of certificates, or None when it is one."""
    try:
        text = path.read_bytes().decode("ascii")
    except FileNotFoundError:
        return "no such file (a PEM bundle)"
    except (OSError, UnicodeDecodeError) as exc:
        reason = "binary (DER?)" if isinstance(exc, UnicodeDecodeError) else str(exc)
        return (
            f"not a readable PEM bundle ({reason}); convert a DER certificate with "
            "`openssl x509 -inform der -in CERT -out cert.pem`"
        )
    if "-----BEGIN CERTIFICATE-----" not in text:
        return "holds no '-----BEGIN CERTIFICATE-----' block: expected a PEM bundle"
    return None
