"""Files replaced only when complete: written beside their target, then renamed onto it."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def file_record(path: Path) -> dict[str, Any]:
    """A file's size and SHA-256, as `metadata.json` lists it."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` (folder created), renamed onto it if the block succeeds.

    A reader never sees a half-written file, and a failed block leaves nothing behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.chmod(0o644)  # mkstemp makes it 0600: other users (a server, a container) read it
    temporary.replace(target)
