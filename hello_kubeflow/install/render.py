"""`inv setup --render DIR`: the profile's manifests rendered (kustomize builds, release
downloads) into plain YAML, one folder per component, for `HK_MANIFESTS_DIR=DIR inv setup`.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import requests
import yaml
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from hello_kubeflow.errors import ManifestError, PrerequisiteError
from hello_kubeflow.http_client import is_transient, send
from hello_kubeflow.install.components import RenderedFile, components_for, read_manifests
from hello_kubeflow.retry import jittered_backoff, log_retry
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

BUILD_TIMEOUT = 600.0
"""Seconds for one kustomize build (remote sources are git clones)."""
DOWNLOAD_TIMEOUT = 120.0
"""Seconds to wait for data of one release file."""
ATTEMPTS = 3
VERSION_TIMEOUT = 30.0
"""Seconds for `kustomize version` (or `kubectl version --client`)."""
KUSTOMIZE_RELEASE = "https://github.com/kubernetes-sigs/kustomize/releases/tag/kustomize%2Fv{}"
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def render_manifests(
    settings: Settings,
    directory: Path,
    *,
    kustomize: str | None = None,
    release_base: str | None = None,
) -> list[Path]:
    """Render every file of the settings' profile into `directory`.

    Args:
        settings: the profile, serving system and versions.
        directory: where the component folders go (made if missing).
        kustomize: the kustomize command (default: `kustomize`, else `kubectl kustomize`).
        release_base: replaces `https://github.com` in download URLs (a mirror).

    Returns:
        The files written.

    Raises:
        PrerequisiteError: no kustomize (nor kubectl), or a kustomize older than 5.
        ManifestError: a build or download failed, or gave what is not Kubernetes objects.
    """
    command = shlex.split(kustomize) if kustomize else _kustomize_command()
    pinned = [f.kustomize for c in components_for(settings) for f in c.files if f.kustomize]
    advice = _check_kustomize(command, max(pinned, key=_numbers)) if pinned else ""
    written: list[Path] = []
    for component in components_for(settings):
        for rendered in component.files:
            path = directory / component.folder / rendered.name
            if path in written:
                continue  # one file serves two components (the platform's cert-manager)
            log.info("rendering %s into %s", rendered.source, path)
            if rendered.kind == "kustomize":
                text = _build(command, rendered, advice)
            else:
                text = _download(rendered, release_base)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_text(text)
            try:
                count = len(read_manifests(partial))  # refuse what is not objects
            except ManifestError:
                partial.unlink()
                raise
            partial.replace(path)
            log.info("wrote %s: %d objects", path, count)
            written.append(path)
    return written


def _kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise PrerequisiteError(
        "rendering needs kustomize 5 (or kubectl, which includes it): "
        "https://kubectl.docs.kubernetes.io/installation/kustomize/"
    )


def _check_kustomize(command: list[str], wanted: str) -> str:
    """Advice for a failed build ("" when right) from the kustomize `command` runs, against
    `wanted`: an older 5.x is used with a warning (upstream often builds with it), a 4 refused.
    """
    found = _kustomize_version(command)
    get = (
        f"kustomize v{wanted}, the release upstream builds these manifests with "
        f"({KUSTOMIZE_RELEASE.format(wanted)}; put it first on PATH)"
    )
    if found is None:
        log.warning("could not read the version of %s's kustomize: expecting %s", command[0], get)
        return f"\nIf `{command[0]}` has a kustomize older than v{wanted}, install {get}."
    shown = ".".join(str(n) for n in found)
    if found[0] < 5:
        raise PrerequisiteError(
            f"`{command[0]}` has kustomize v{shown}, which cannot build these manifests: "
            f"install {get}"
        )
    if found < _numbers(wanted):
        log.warning(
            "%s has kustomize v%s, older than %s; rendering with it", command[0], shown, get
        )
        return f"\n`{command[0]}` has kustomize v{shown}, older than v{wanted}: install {get}."
    log.info("rendering with kustomize v%s (%s)", shown, command[0])
    return ""


def _kustomize_version(command: list[str]) -> tuple[int, ...] | None:
    """The kustomize release `command` runs (kubectl's own for `kubectl kustomize`), if told."""
    kubectl = Path(command[0]).name == "kubectl"
    probe = (
        [command[0], "version", "--client", "-o", "json"] if kubectl else [*command[:-1], "version"]
    )
    try:
        done = subprocess.run(probe, capture_output=True, timeout=VERSION_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    said = done.stdout.decode(errors="replace")
    if kubectl:
        try:
            said = str(json.loads(said).get("kustomizeVersion", ""))
        except (ValueError, AttributeError):
            return None
    return (_numbers(said) if done.returncode == 0 else ()) or None


def _numbers(version: str) -> tuple[int, ...]:
    """`v5.8.1` (or `kustomize/v5.8.1 ...`) as (5, 8, 1); () when it names no version."""
    found = _VERSION.search(version)
    return tuple(int(n) for n in found.groups()) if found else ()


def _build(command: list[str], rendered: RenderedFile, advice: str = "") -> str:
    full = [*command, rendered.source]
    try:
        done = subprocess.run(full, capture_output=True, timeout=BUILD_TIMEOUT, check=False)
    except FileNotFoundError:
        raise PrerequisiteError(f"`{command[0]}` is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise ManifestError(
            f"`{shlex.join(full)}` took over {BUILD_TIMEOUT:.0f} s; check the network"
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise ManifestError(f"`{shlex.join(full)}` failed:\n{message}{advice}")
    text = done.stdout.decode()
    _no_unrendered(text, rendered.source)
    return text


def _no_unrendered(text: str, source: str) -> None:
    """A kustomization in the output means something was not built."""
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") in ("Kustomization", "Component"):
            raise ManifestError(f"{source} rendered to a {doc['kind']}, not objects")


def _download(rendered: RenderedFile, release_base: str | None) -> str:
    url = rendered.source
    if release_base:
        url = url.replace("https://github.com", release_base.rstrip("/"), 1)

    def fetch() -> str:
        response = send("GET", url, timeout=DOWNLOAD_TIMEOUT)
        response.raise_for_status()
        return response.text

    try:
        return Retrying(
            retry=retry_if_exception(is_transient),
            wait=jittered_backoff(1.0, 10.0),
            stop=stop_after_attempt(ATTEMPTS),
            before_sleep=log_retry(log, f"downloading {url}"),
            reraise=True,
        )(fetch)
    except requests.RequestException as exc:
        raise ManifestError(f"cannot download {url}: {exc}") from None
