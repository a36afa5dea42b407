"""The record of the last build (`<output_dir>/image.json`) and the image runs use."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hello_kubeflow.errors import ImageError
from hello_kubeflow.settings import Settings

RECORD_FILE = "image.json"
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class ImageRecord:
    """What `inv build-push` built and pushed."""

    image: str
    repository: str
    tag: str
    image_id: str
    digest: str | None
    pushed: bool
    base_image: str
    revision: str
    created: str
    build_seconds: float
    push_seconds: float

    @property
    def reference(self) -> str:
        """How runs name the image: `repository@sha256:...` once pushed, else the tag."""
        return f"{self.repository}@{self.digest}" if self.digest else self.image

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-serialisable dict (with `reference`)."""
        return {**asdict(self), "reference": self.reference}

    def describe(self) -> str:
        """The record as a person reads it."""
        lines = [f"built:  {self.image} ({self.image_id[:19]}) in {self.build_seconds:.1f} s"]
        if self.pushed:
            lines.append(f"pushed: {self.reference} in {self.push_seconds:.1f} s")
        else:
            lines.append("pushed: no (--no-push): runs on this machine use the local tag")
        return "\n".join(lines)


def write_record(output_dir: Path, record: ImageRecord) -> Path:
    """Record the build in `<output_dir>/image.json`, so later runs use the image by digest."""
    path = output_dir / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.as_dict(), indent=2) + "\n")
    return path


def read_record(output_dir: Path) -> ImageRecord | None:
    """The last build's record, None when nothing was built here (ImageError: damaged)."""
    path = output_dir / RECORD_FILE
    try:
        data = json.loads(path.read_text())
        data.pop("reference", None)
        return ImageRecord(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, AttributeError) as exc:  # AttributeError: not an object
        raise ImageError(
            f"{path} is damaged ({exc}): run `inv build-push` again, or delete it"
        ) from None


def pipeline_image(settings: Settings) -> str:
    """The image every pipeline step and the containerised server run in.

    `HK_PIPELINE_IMAGE` when set; else the last `inv build-push`'s record
    (`name@sha256:...` once pushed, the local tag after `--no-push`); else
    `${CONTAINER_REGISTRY}/<name>:latest` (not pinned: run `inv build-push`).

    Raises:
        ImageError: the build record exists but is damaged.
    """
    if settings.pipeline_image:
        return settings.pipeline_image
    record = read_record(settings.output_dir)
    if record is not None:
        return record.reference
    registry = settings.container_registry
    name = f"{registry}/{settings.image_name}" if registry else settings.image_name
    return f"{name}:{settings.image_tag or DEFAULT_TAG}"
