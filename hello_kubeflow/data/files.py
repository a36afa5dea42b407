"""Files replaced only when complete: written beside their target, then renamed onto it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
