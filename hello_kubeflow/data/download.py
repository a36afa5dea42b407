"""Download a file from mirrors tried in order: timeouts, narrow retries, verify, then rename."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception

from hello_kubeflow.errors import DataError, DataFileError, DownloadError
from hello_kubeflow.http_client import (
    CONNECT_TIMEOUT,
    is_transient,
    is_unreachable,
    send,
    status_error,
)
from hello_kubeflow.retry import DEFAULT_RETRY, Backoff, describe_failure, log_retry

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_BYTES = 256 * 1024
MAX_DOWNLOAD_BYTES = 128 * 1024 * 1024  # a mirror streaming without end is cut off here
STALE_PART_SECONDS = 3600.0  # leftovers of a killed download older than this are removed
PART_SUFFIX = ".part"

# Mirrors (host:port) found unreachable in this process, and why. One command decides
# once that it is offline: later files skip these mirrors instead of trying them again.
_unreachable: dict[str, str] = {}
_unreachable_lock = threading.Lock()


def unreachable_mirrors() -> dict[str, str]:
    """The mirrors (host:port) this process could not reach, each with the reason."""
    with _unreachable_lock:
        return dict(_unreachable)


def forget_unreachable() -> None:
    """Forget which mirrors were unreachable: the next download tries every mirror again."""
    with _unreachable_lock:
        _unreachable.clear()


def fetch_from_mirrors(
    file_name: str,
    mirrors: Sequence[str],
    directory: Path,
    verify: Callable[[Path], tuple[T, str]],
    *,
    timeout: float,
    retry: Backoff = DEFAULT_RETRY,
) -> tuple[T, Path, str]:
    """Download `<mirror><file_name>` into `directory` from the first mirror that works.

    Each download streams into a hidden temporary file that `verify` checks and names
    before it is renamed into place: a failed or rejected download leaves nothing behind.

    Args:
        file_name: appended to each mirror URL (base URLs ending in "/", tried in order;
            one this process found unreachable is skipped).
        verify: takes the temporary file; returns a result and the final file name, or
            raises `DataFileError` (then the next mirror is tried).
        timeout: seconds to wait for data on every request.
        retry: retries of one mirror on connection errors, timeouts, 429 and 5xx.

    Returns:
        What `verify` returned, the final path, and the mirror used.

    Raises:
        DownloadError: every mirror failed, each named with why (`offline`: none answered).
        DataError: `directory` cannot be created or written to.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass  # can we write there? Better to know before downloading anything
    except OSError as exc:
        raise DataError(
            f"cannot write to {directory} ({exc.strerror or exc}). Set HK_CACHE_DIR to a "
            "writable folder, or point MNIST_DIR at a folder holding the four MNIST files."
        ) from None
    _remove_stale_parts(directory, file_name)
    failures: list[tuple[str, str]] = []
    offline = True
    with requests.Session() as session:
        for mirror in mirrors:
            url = f"{mirror}{file_name}"
            host = urlsplit(mirror).netloc
            known = unreachable_mirrors().get(host)
            if known is not None:
                failures.append((url, f"{known} (earlier in this run; not tried again)"))
                continue
            fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{file_name}.", suffix=PART_SUFFIX)
            os.close(fd)
            part = Path(temp)
            tries = _Tries()
            level = logging.WARNING
            try:
                log.info("downloading %s", url)
                Retrying(
                    retry=retry_if_exception(is_transient),
                    stop=retry.stop(),
                    wait=retry.wait(),
                    before_sleep=log_retry(log, f"downloading {url}"),
                    reraise=True,
                )(_stream, session, url, part, timeout, tries)
                result, final_name = verify(part)
                final = directory / final_name
                os.replace(part, final)
                return result, final, mirror
            except DataFileError as exc:
                offline = False
                failures.append((url, str(exc)))
            except requests.RequestException as exc:
                unreachable = not tries.answered and is_unreachable(exc)
                offline = offline and unreachable
                failures.append((url, _describe(exc, tries.count, timeout)))
                if unreachable:
                    level = logging.DEBUG
                    with _unreachable_lock:
                        _unreachable[host] = _describe(exc, 1, timeout)
            finally:
                part.unlink(missing_ok=True)
            # Unreachable mirrors are summed up once by the caller ("offline: ..."); a
            # mirror that answered badly is worth a line of its own.
            log.log(level, "%s failed: %s", url, failures[-1][1])
    lines = "\n".join(f"  - {url}: {why}" for url, why in failures) or "  (no mirror is set)"
    raise DownloadError(
        f"could not download {file_name} from any mirror:\n{lines}\n"
        "Check the network (or proxy), set HK_MNIST_MIRRORS to a mirror that works, "
        "or point MNIST_DIR at a folder holding the four MNIST files.",
        failures=tuple(f"{url}: {why}" for url, why in failures),
        offline=offline and bool(failures),
    )


@dataclass
class _Tries:
    """What the attempts on one mirror saw."""

    count: int = 0
    answered: bool = False  # an HTTP response came back: the mirror is reachable


def _stream(session: requests.Session, url: str, part: Path, timeout: float, tries: _Tries) -> None:
    """GET `url` into `part` (truncated first: each attempt starts over)."""
    tries.count += 1
    with send("GET", url, timeout=timeout, session=session, stream=True) as resp:
        tries.answered = True
        if resp.status_code != 200:
            raise status_error(resp)
        received = 0
        with part.open("wb") as out:
            for chunk in resp.iter_content(CHUNK_BYTES):
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise DataFileError(f"the download is larger than {MAX_DOWNLOAD_BYTES:,} bytes")
                out.write(chunk)


def _describe(exc: BaseException, attempts: int, timeout: float) -> str:
    """A short reason for a person, e.g. 'cannot connect: Connection refused'."""
    if isinstance(exc, requests.exceptions.SSLError):
        reason = f"TLS/certificate error ({describe_failure(exc)})"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        reason = f"cannot connect: no answer within {min(CONNECT_TIMEOUT, timeout):g} s"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        reason = "the connection dropped in the middle of the download"
    elif isinstance(exc, requests.Timeout):
        reason = f"no data for {timeout:g} s (HK_DOWNLOAD_TIMEOUT)"
    elif isinstance(exc, requests.ConnectionError):
        reason = f"cannot connect: {describe_failure(exc)}"
    else:
        reason = str(exc)
    return reason + (f" (after {attempts} attempts)" if attempts > 1 else "")


def _remove_stale_parts(directory: Path, file_name: str) -> None:
    """Remove temporary files a killed download left behind (old enough to be dead)."""
    cutoff = time.time() - STALE_PART_SECONDS
    for part in directory.glob(f".{file_name}.*{PART_SUFFIX}"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except OSError:
            pass  # another process removed it first
