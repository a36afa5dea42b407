"""The model hand-over through a real S3 API: KFP's launcher writes, the initializers read.

`moto`'s server stands in for SeaweedFS (both speak the S3 API) on 127.0.0.1.
What writes and reads follows upstream:

- `upload_like_the_launcher`: one object per file under the artifact's key,
  subdirectories as `<key>/<dir>/...` (kubeflow/pipelines 2.17.0,
  backend/src/v2/objectstore/object_store.go `UploadBlob`);
- `kserve_initializer_env`: the environment KServe's controller gives its
  storage initializer from the service account's S3 Secret (kserve/kserve
  v0.20.0, pkg/credentials/s3/s3_secret.go `BuildSecretEnvs`, utils.go
  `BuildS3EnvVars`, `getEndpointConfiguration`); the download itself is
  KServe's own `kserve_storage` 0.20.0, as its `initializer-entrypoint` runs it;
- `seldon_initializer`: Seldon's rclone storage initializer, `rclone copy
  <modelUri> /mnt/models` with the `envSecretRefName` Secret as environment and
  the image's own variables (SeldonIO/seldon-core v1.17.1,
  components/rclone-storage-initializer/Dockerfile, operator/controllers/
  model_initializer_injector.go).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from serving_support import free_port

ACCESS_KEY, SECRET_KEY = "minio", "minio123"  # KFP 2.17.0's mlpipeline-minio-artifact
BUCKET = "mlpipeline"
INITIALIZER_SECONDS = 120.0
# Set in seldonio/rclone-storage-initializer's image (its Dockerfile).
RCLONE_IMAGE_ENV = {
    "RCLONE_CONFIG_GS_TYPE": "google cloud storage",
    "RCLONE_CONFIG_GS_ANONYMOUS": "true",
    "RCLONE_VERBOSE": "1",
}


@contextmanager
def s3_server() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1 with KFP's bucket; yields `host:port`."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3_client(f"127.0.0.1:{port}").create_bucket(Bucket=BUCKET)
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the server at `endpoint` with KFP's keys."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def upload_like_the_launcher(endpoint: str, local: Path, artifact_uri: str) -> list[str]:
    """Write the directory `local` to `artifact_uri` (minio://bucket/key) as KFP's launcher does."""
    parts = urlsplit(artifact_uri)
    client = s3_client(endpoint)
    written = []

    def upload(directory: Path, key: str) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                upload(entry, f"{key}/{entry.name}")
            else:
                client.upload_file(str(entry), parts.netloc, f"{key}/{entry.name}")
                written.append(f"{key}/{entry.name}")

    upload(local, parts.path.lstrip("/"))
    return written


def kserve_initializer_env(secret: dict[str, Any]) -> dict[str, str]:
    """The storage initializer's environment KServe builds from an S3 Secret."""
    data = secret.get("stringData") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    env = {
        "AWS_ACCESS_KEY_ID": data["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": data["AWS_SECRET_ACCESS_KEY"],
    }
    endpoint = annotations.get("serving.kserve.io/s3-endpoint", "").strip()
    if endpoint:
        if endpoint.lower().startswith(("http://", "https://")):
            https = "1" if endpoint.lower().startswith("https://") else "0"
            url, endpoint = endpoint, endpoint.split("://", 1)[1]
        else:
            https = annotations.get("serving.kserve.io/s3-usehttps", "")
            url = ("http://" if https == "0" else "https://") + endpoint
        if https:
            env["S3_USE_HTTPS"] = https
        env["S3_ENDPOINT"] = endpoint
        env["AWS_ENDPOINT_URL"] = url
    for annotation, name in (
        ("serving.kserve.io/s3-verifyssl", "S3_VERIFY_SSL"),
        ("serving.kserve.io/s3-region", "AWS_DEFAULT_REGION"),
    ):
        if annotations.get(annotation):
            env[name] = annotations[annotation]
    return env


def _run(command: list[str], env: dict[str, str]) -> None:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run(
        command,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=INITIALIZER_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")


def kserve_initializer(storage_uri: str, destination: Path, env: dict[str, str]) -> None:
    """Run KServe's storage initializer (kserve_storage) for `storage_uri` into `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys\nfrom kserve_storage import Storage\n"
        "Storage.download_files([sys.argv[1]], [sys.argv[2]])\n"
    )
    _run([sys.executable, "-c", script, storage_uri, str(destination)], env)


def seldon_initializer(model_uri: str, destination: Path, secret: dict[str, Any]) -> None:
    """Run Seldon's rclone storage initializer for `model_uri` with its Secret's environment."""
    rclone = shutil.which("rclone")
    if rclone is None:
        raise AssertionError("rclone is not installed (apt-get install rclone)")
    env = {**RCLONE_IMAGE_ENV, **(secret.get("stringData") or {})}
    _run([rclone, "copy", model_uri, str(destination)], env)
