"""Build the image with the Docker SDK, streaming the build's output as it comes."""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import docker
import requests
from docker.utils.build import create_archive, exclude_paths

from hello_kubeflow.errors import BuildError, DockerUnavailableError
from hello_kubeflow.images.plan import BuildPlan, registry_host

log = logging.getLogger(__name__)

EXTRA_CA_NAME = "certs/hk-extra-ca.crt"
TAIL_LINES = 25
_STEP = re.compile(r"^Step \d+/\d+ : ")
_FROM = re.compile(r"^Step \d+/\d+ : FROM\s+(?:--\S+\s+)*(\S+)", re.IGNORECASE)
_STEP_SHOWN = 200


def build_image(client: docker.DockerClient, plan: BuildPlan, *, no_cache: bool = False) -> str:
    """Build `plan.image` (`no_cache`: every layer), logging it live; the image ID.

    Raises:
        BuildError: a step failed (quoted, with its last output lines), or the engine refused.
        DockerUnavailableError: the engine went away during the build.
    """
    log.info("building %s from %s", plan.image, plan.context)
    with build_context(plan.context, plan.dockerfile, plan.extra_ca_certs) as context:
        try:
            stream = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=plan.image,
                dockerfile=plan.dockerfile,
                buildargs=plan.build_args,
                labels=plan.labels or None,
                rm=True,
                forcerm=True,
                nocache=no_cache,
                pull=False,
                decode=True,
            )
            image_id = follow_build(stream, base_image=plan.base_image)
        except docker.errors.APIError as exc:
            raise BuildError(
                f"the Docker engine refused to build {plan.image}: {exc.explanation or exc}"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise DockerUnavailableError(
                f"lost the Docker engine while building {plan.image} ({exc})"
            ) from None
        except requests.exceptions.Timeout:
            raise BuildError(
                f"the build of {plan.image} printed nothing for too long: raise "
                "HK_DOCKER_TIMEOUT (seconds per Docker API call) or check the engine"
            ) from None
    log.info("built %s (%s)", plan.image, image_id)
    return image_id


def follow_build(chunks: Iterable[Mapping[str, Any]], *, base_image: str = "") -> str:
    """Log a build's decoded stream and return the image ID; `base_image` names a failed pull.

    Raises:
        BuildError: an `error` entry, naming the step and the last output lines; at a
            `FROM` step, the base image, its registry and how to build from another.
    """
    step = "(before the first step)"
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    image_id = ""
    for line in _lines(chunks):
        if isinstance(line, dict):
            if "aux" in line and isinstance(line["aux"], dict):
                image_id = str(line["aux"].get("ID", image_id))
                continue
            detail = line.get("errorDetail") or {}
            message = str(line.get("error") or detail.get("message") or line).strip()
            pulling = _FROM.match(step)
            if pulling:
                raise BuildError(_pull_failure(pulling.group(1), base_image, message))
            raise BuildError(_failure_message(step, message, list(tail)))
        if _STEP.match(line):
            step = line
            tail.clear()
            log.info("%s", _shorten(line))
        else:
            tail.append(line)
            log.info("  %s", line)
    if not image_id:
        raise BuildError(
            "the build ended without an image ID (the engine's stream was cut short): "
            "run inv build-push again; if it persists, check the engine's log"
        )
    return image_id


def build_context(root: Path, dockerfile: str, extra_ca: Path | None) -> IO[bytes]:
    """The build context as a tar: `root` less `.dockerignore`, plus the CA file.

    The CA goes in as `certs/hk-extra-ca.crt` (where the Dockerfile looks), not into the checkout.
    """
    ignore = root / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    files = sorted(exclude_paths(str(root), patterns, dockerfile=dockerfile))
    extra = [(EXTRA_CA_NAME, extra_ca.read_text())] if extra_ca else []
    context: IO[bytes] = create_archive(root=str(root), files=files, extra_files=extra)
    return context


def _lines(chunks: Iterable[Mapping[str, Any]]) -> Iterator[str | dict[str, Any]]:
    """Split `stream` text into whole lines; pass errors and aux entries as dicts."""
    partial = ""
    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk or "aux" in chunk:
            if partial.strip():
                yield partial.rstrip()
            partial = ""
            yield dict(chunk)
            continue
        text = chunk.get("stream")
        if text is None and chunk.get("status"):
            if (chunk.get("progressDetail") or {}).get("current"):
                continue  # a progress-bar update while pulling the base image
            text = f"{chunk.get('id', '')} {chunk['status']}".strip() + "\n"
        if not text:
            continue
        partial += str(text)
        *done, partial = partial.split("\n")
        for line in done:
            if line.strip():
                yield line.rstrip()
    if partial.strip():
        yield partial.rstrip()


def _failure_message(step: str, message: str, tail: list[str]) -> str:
    shown = "\n".join(f"    | {line}" for line in tail) or "    (no output)"
    return (
        f"the image build failed at {_shorten(step)}\n"
        f"  {message}\n"
        f"  last lines of its output:\n{shown}\n"
        "Fix that step in the Dockerfile (or what it needs: network, CA certificates "
        "via HK_EXTRA_CA_CERTS, the base image), then run inv build-push again."
    )


def _pull_failure(named: str, base_image: str, message: str) -> str:
    """A `FROM` that failed: which image, from which registry, and how to build from another."""
    image = re.sub(r"\$\{?BASE_IMAGE\}?", base_image, named) if base_image else named
    registry = registry_host(image)
    return (
        f"could not get the base image {image} from {registry}: {message}\n"
        f"Check that this machine reaches {registry} (its proxy, or "
        f"`docker login {registry}` for a private image), or build FROM another "
        "base with Python >= 3.11: `inv build-push --base-image IMAGE`, HK_BASE_IMAGE=IMAGE "
        "(environment or .env), or `docker build --build-arg BASE_IMAGE=IMAGE .`"
    )


def _shorten(step: str) -> str:
    one_line = " ".join(step.split())
    return one_line if len(one_line) <= _STEP_SHOWN else one_line[: _STEP_SHOWN - 3] + "..."
