"""The bodies of the pipeline's steps, testable without KFP; each takes its inputs as arguments.

Artifacts: the dataset is one compressed `.npz` (~13 MB for full MNIST), the model a
directory (`hello_kubeflow.model.train`), the report a directory with `evaluation.json`
and `confusion_matrix.png`. The test set is scored once, on the model as it will be served.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hello_kubeflow.data.files import file_record, replacing
from hello_kubeflow.data.idx import CHECKSUMS_FILE, FILE_NAMES, find_idx_file, mnist_folder
from hello_kubeflow.errors import DataFileError
from hello_kubeflow.model import CONFUSION_PNG, EVALUATION_FILE
from hello_kubeflow.settings import Settings, env_name

if TYPE_CHECKING:  # numpy (0.1 s) only where arrays are read: not when a kept dataset is copied
    import numpy as np

    from hello_kubeflow.data.mnist import MnistData, MnistTestImages

log = logging.getLogger(__name__)

# zlib level 1: full MNIST 55 MB -> 13 MB in about half a second; higher levels save
# under 1.5 MB more and take two to five times as long (docs/benchmarks.md).
DATASET_COMPRESSION = 1
# Part of the kept dataset's key: change it whenever what the step writes changes.
DATASET_FORMAT = 1
KEPT_DATASET = "dataset.npz"  # in the cache folder, with its record:
KEPT_RECORD = "dataset.json"


def load_data_step(
    dataset_path: str,
    *,
    mnist_dir: str = "",
    mnist_mirrors: str = "",
    cache_dir: str = "",
    download_timeout: float = 60.0,
    train_limit: int = 0,
    test_limit: int = 0,
) -> dict[str, Any]:
    """Load MNIST and write it as the pipeline's dataset artifact at `dataset_path`.

    Args:
        mnist_dir, mnist_mirrors, cache_dir: as `MNIST_DIR`, `HK_MNIST_MIRRORS` (comma-separated)
            and `HK_CACHE_DIR` say (empty: the default).
        download_timeout: seconds per download request.
        train_limit, test_limit: keep only the first N training / test images (0: all).

    Returns:
        The artifact's metadata: source, sizes, whether it is the subset, and the
        digests of the training and test data as loaded (before the limits).
    """
    given = {"mnist_dir": mnist_dir, "mnist_mirrors": mnist_mirrors, "cache_dir": cache_dir}
    # Checked like the environment: a malformed parameter is a SettingsError.
    settings = Settings(download_timeout=download_timeout).override(
        {k: v for k, v in given.items() if v}
    )
    folder = mnist_folder(settings.mnist_dir, settings.cache_dir)
    made_from = (folder, settings.mnist_dir is not None, train_limit, test_limit)
    key = _dataset_key(*made_from)
    kept = _reuse_dataset(settings.cache_dir, key, Path(dataset_path))
    if kept is not None:
        return kept
    import numpy as np  # numpy and the loader: not to copy a kept dataset

    from hello_kubeflow.data.mnist import load_mnist

    data = load_mnist(settings)
    x_train, y_train = _head(data.x_train, train_limit), _head(data.y_train, train_limit)
    x_test, y_test = _head(data.x_test, test_limit), _head(data.y_test, test_limit)
    info: dict[str, Any] = {
        "source": data.source,
        "is_subset": data.is_subset,
        "train_size": len(y_train),
        "test_size": len(y_test),
    }
    info["train_digest"], info["test_digest"] = data.digests()
    arrays = {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "info": np.array(json.dumps(info)),
    }
    write_dataset(Path(dataset_path), arrays)
    log.info("dataset: %d train / %d test images from %s", len(y_train), len(y_test), data.source)
    if key is not None and key == _dataset_key(*made_from):  # no file changed meanwhile
        _keep_dataset(settings.cache_dir, key, Path(dataset_path), info)
    return info


def _dataset_key(
    folder: Path, given_dir: bool, train_limit: int, test_limit: int
) -> list[Any] | None:
    """What a kept dataset was made from: the MNIST files as they are now, and the limits.

    None when a file is missing (it will be downloaded, or the offline subset used).
    """
    checksums = folder / CHECKSUMS_FILE
    try:
        stamps: list[Any] = [
            _stamp(path) for name in FILE_NAMES if (path := find_idx_file(folder, name))
        ]
        if len(stamps) < len(FILE_NAMES):
            return None
        stamps.append(_stamp(checksums) if checksums.is_file() else None)  # None: MNIST's own
    except OSError:
        return None
    kind = env_name("mnist_dir") if given_dir else "cache"
    return [DATASET_FORMAT, kind, stamps, train_limit, test_limit]


def _stamp(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _reuse_dataset(cache_dir: Path, key: list[Any] | None, path: Path) -> dict[str, Any] | None:
    """Copy the kept dataset to `path` if it was made from `key`; its info, else None."""
    kept = cache_dir / KEPT_DATASET
    try:
        record = json.loads((cache_dir / KEPT_RECORD).read_text(encoding="utf-8"))
        if key is None or not isinstance(record, dict) or record.get("key") != key:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept, path)
        # The copy itself is checked: a kept file changed or replaced since is not used.
        if file_record(path) != record.get("file"):
            return None
        info: dict[str, Any] = record["info"]
        log.info(
            "dataset: %d train / %d test images from %s (kept from an earlier run: the same "
            "unchanged MNIST files and limits)",
            info["train_size"],
            info["test_size"],
            info["source"],
        )
    except (OSError, ValueError, KeyError, TypeError):  # no kept dataset, or a damaged record
        return None
    return info


def _keep_dataset(cache_dir: Path, key: list[Any], path: Path, info: dict[str, Any]) -> None:
    """Keep a copy of the dataset for later runs on the same files and limits (best effort)."""
    kept = cache_dir / KEPT_DATASET
    record = {"key": key, "file": file_record(path), "info": info}
    try:  # through temporary files: concurrent runs never see half a dataset
        with replacing(kept) as part:
            shutil.copyfile(path, part)
        with replacing(cache_dir / KEPT_RECORD) as part:
            part.write_text(json.dumps(record, indent=1), encoding="utf-8")
    except OSError as exc:
        log.debug("cannot keep the dataset in %s: %s", kept.parent, exc)


def write_dataset(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as an `.npz` at `DATASET_COMPRESSION` (`np.savez_compressed` has no level)."""
    import numpy as np  # here and below: the module is imported by steps that need no numpy

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(
        path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=DATASET_COMPRESSION
    ) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def read_test_images(dataset_path: str) -> MnistTestImages:
    """Only the test set of a dataset artifact (DataFileError if it is not one)."""
    from hello_kubeflow.data.mnist import MnistTestImages

    with _dataset(dataset_path) as (npz, info):
        return MnistTestImages(x=npz["x_test"], y=npz["y_test"], **_origin(info))


def read_dataset(dataset_path: str) -> MnistData:
    """Read the dataset artifact written by `load_data_step` (DataFileError if it is not one)."""
    from hello_kubeflow.data.mnist import MnistData

    with _dataset(dataset_path) as (npz, info):
        arrays = {name: npz[name] for name in ("x_train", "y_train", "x_test", "y_test")}
        return MnistData(**arrays, **_origin(info))


def _origin(info: dict[str, Any]) -> dict[str, Any]:
    return {"source": str(info["source"]), "is_subset": bool(info["is_subset"])}


@contextmanager
def _dataset(dataset_path: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The open archive and its `info` record; any way it is not our dataset is one error."""
    import numpy as np

    try:
        with np.load(dataset_path, allow_pickle=False) as npz:
            yield npz, json.loads(str(npz["info"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFileError(
            f"{dataset_path} is not a dataset written by the load-data step ({exc}); "
            "run the pipeline again from the start"
        ) from exc


def train_step(
    dataset_path: str,
    model_path: str,
    *,
    preset: str,
    n_estimators: int,
    seed: int,
    model_kind: str = "forest",
    n_jobs: int = -1,
) -> dict[str, Any]:
    """Train on the dataset artifact and save the model directory at `model_path`.

    Args:
        preset: a name in `hello_kubeflow.model.train.PRESETS_BY_MODEL[model_kind]`.
        n_estimators: number of trees (0: the preset's; the forest only).
        n_jobs: training processes (-1: all cores).

    Returns:
        The artifact's metadata (the model's `metadata.json`; no accuracy: evaluate scores it).
    """
    # scikit-learn, onnx: not in the load-data step
    from hello_kubeflow.model.train import build_metadata, save_model, train_model

    with _dataset(dataset_path) as (npz, info):  # the training half only
        x_train, y_train, origin = npz["x_train"], npz["y_train"], _origin(info)
    if origin["is_subset"]:
        log.warning("training on the 5,000-digit offline subset: accuracy is not comparable")
    result = train_model(
        x_train,  # uint8: scaled after the preset's sample is drawn
        y_train,
        model=model_kind,
        preset=preset,
        n_estimators=n_estimators or None,
        seed=seed,
        n_jobs=n_jobs,
    )
    metadata = build_metadata(result, data_source=origin["source"])
    metadata["data_is_subset"] = origin["is_subset"]
    save_model(Path(model_path), result, metadata=metadata)
    log.info("trained %s (%s) in %.1f s", model_kind, preset, result.seconds)
    return metadata


def evaluate_step(dataset_path: str, model_path: str, report_path: str) -> dict[str, Any]:
    """Evaluate the saved model on the test set and write the report directory.

    Returns:
        The evaluation with the test size, class names, the model's kind, preset, training
        seconds, size and one-image latency, its three worst confusions, and `metrics`
        (`kfp_metrics`).
    """
    # scikit-learn, onnx: not in the load-data step
    from hello_kubeflow.data.mnist import MnistTestImages, scale_pixels
    from hello_kubeflow.model.evaluation import one_image_latency_ms, top_confusions
    from hello_kubeflow.model.train import evaluate, load_model, save_confusion_png

    with _dataset(dataset_path) as (npz, info):
        data = MnistTestImages(x=npz["x_test"], y=npz["y_test"], **_origin(info))
        digest = str(info.get("test_digest", ""))[:8]
    loaded = load_model(Path(model_path))
    # Score what will be served: the fast form (identical digits to scikit-learn, tested).
    pixels = scale_pixels(data.x)
    evaluation = evaluate(loaded, pixels, data.y)
    result = evaluation.as_dict()
    result["test_size"] = len(data.y)
    result["class_names"] = list(loaded.class_names)
    result["model"] = loaded.kind
    result["preset"] = str(loaded.metadata.get("preset", ""))
    result["train_seconds"] = float(loaded.metadata.get("train_seconds") or 0.0)
    result["model_bytes"] = sum(int(f["bytes"]) for f in loaded.metadata["files"].values())
    result["latency_ms"] = round(one_image_latency_ms(loaded, pixels[0]), 4)
    result["top_confusions"] = [list(pair) for pair in top_confusions(evaluation)]
    result["metrics"] = kfp_metrics(result)
    report = Path(report_path)
    report.mkdir(parents=True, exist_ok=True)
    (report / EVALUATION_FILE).write_text(json.dumps(result, indent=2) + "\n")
    source = "the 5,000-digit offline subset, not full MNIST" if data.is_subset else data.source
    save_confusion_png(evaluation, report / CONFUSION_PNG, scored_on=f"{source} (sha256 {digest})")
    log.info("test accuracy %.4f on %d images", evaluation.accuracy, len(data.y))
    return result


def kfp_metrics(result: dict[str, Any]) -> dict[str, float]:
    """What the evaluate step logs on its Metrics artifact, so runs compare in the UI.

    Returns:
        accuracy, test size, training seconds, model MB, one-image latency in ms, and
        each digit's recall (`recall_0` ... `recall_9`).
    """
    metrics = {
        "accuracy": float(result["accuracy"]),
        "test_size": float(result["test_size"]),
        "train_seconds": float(result["train_seconds"]),
        "model_mb": round(result["model_bytes"] / 1e6, 3),
        "latency_ms": float(result["latency_ms"]),
    }
    metrics.update({f"recall_{d}": float(r) for d, r in enumerate(result["recall"])})
    return metrics


def _head(array: np.ndarray, limit: int) -> np.ndarray:
    return array[:limit] if limit > 0 else array
