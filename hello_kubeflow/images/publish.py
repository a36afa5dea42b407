"""`inv build-push`: validate, build, push, record the digest."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from hello_kubeflow.images.build import build_image
from hello_kubeflow.images.engine import connect
from hello_kubeflow.images.plan import BuildPlan, plan_build
from hello_kubeflow.images.push import PUSH_RETRY_SECONDS, push_image, registry_auth
from hello_kubeflow.images.record import ImageRecord, write_record
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildPushResult:
    """What `build_push` did: the plan, and the record unless it was a dry run."""

    plan: BuildPlan
    record: ImageRecord | None = None
    record_file: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as a JSON-serialisable dict."""
        return {
            "dry_run": self.record is None,
            "plan": self.plan.as_dict(),
            "record": self.record.as_dict() if self.record else None,
            "record_file": str(self.record_file) if self.record_file else None,
        }

    def describe(self) -> str:
        """The result as a person reads it."""
        if self.record is None:
            return "dry run: nothing built or pushed\n" + self.plan.describe()
        return f"{self.record.describe()}\nrecorded in {self.record_file}"


def build_push(
    settings: Settings,
    *,
    push: bool = True,
    dry_run: bool = False,
    tag: str = "",
    base_image: str = "",
    context: Path | None = None,
    retry_seconds: float = PUSH_RETRY_SECONDS,
) -> BuildPushResult:
    """Build the project image, push it and record its digest in `image.json`.

    Everything is validated (`plan_build`, whose options these are) before the
    engine is contacted; a dry run only returns the plan.

    Args:
        settings: the workflow settings.
        push: push to `CONTAINER_REGISTRY` after the build (`--no-push`: False).
        dry_run: only decide and return the plan; contact no engine.
        retry_seconds: how long to keep retrying a push that fails transiently.

    Raises:
        SettingsError: the registry, name, tag, CA file or credentials are unusable.
        DockerUnavailableError: no engine is reachable.
        BuildError: a Dockerfile step failed.
        PushError: the push failed (`RegistryAuthError`: not retried;
            `RegistryUnavailableError`: still failing after the retries).
    """
    plan = plan_build(
        settings, push=push, tag=tag, base_image=base_image, context=context, dry_run=dry_run
    )
    user, password = settings.registry_username, settings.registry_password
    auth = registry_auth(user, password, plan.registry or "") if push else None
    if dry_run:
        return BuildPushResult(plan=plan)
    client = connect(settings.docker_timeout)
    try:
        started = time.monotonic()
        image_id = build_image(client, plan)
        built = time.monotonic()
        digest = None
        if push:
            digest = push_image(
                client, plan.repository, plan.tag, auth=auth, retry_seconds=retry_seconds
            )
            log.info("image digest: %s@%s", plan.repository, digest)
        pushed = time.monotonic()
        base = _base_image_of(client, image_id) or plan.base_image
    finally:
        client.close()
    record = ImageRecord(
        image=plan.image,
        repository=plan.repository,
        tag=plan.tag,
        image_id=image_id,
        digest=digest,
        pushed=push,
        base_image=base,
        revision=plan.build_args.get("REVISION", ""),
        created=plan.build_args["CREATED"],
        build_seconds=round(built - started, 2),
        push_seconds=round(pushed - built, 2),
    )
    return BuildPushResult(
        plan=plan, record=record, record_file=write_record(settings.output_dir, record)
    )


def _base_image_of(client: docker.DockerClient, image_id: str) -> str:
    """The base image named in the built image's labels (the Dockerfile default too)."""
    try:
        labels = client.images.get(image_id).labels or {}
    except docker.errors.APIError:
        return ""  # only informative: a finished build does not fail for it
    return str(labels.get("org.opencontainers.image.base.name", ""))
