"""One function a task, choosing between local, cluster and container: options as given (`""`
or 0: not given), those that do nothing in the chosen mode refused, saying why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hello_kubeflow.cli.options import Result, refuse
from hello_kubeflow.errors import PipelineError, UsageError
from hello_kubeflow.project import require_checkout
from hello_kubeflow.settings import Settings

if TYPE_CHECKING:
    from hello_kubeflow.kube.report import Snapshot
    from hello_kubeflow.kube.wait import WaitResult


@dataclass(frozen=True)
class Done:
    """What a task did: `text` for a person, `data` the one JSON object of `--json`."""

    text: str
    data: dict[str, Any]

    def describe(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        return self.data


def _removed(where: str, removed: list[str], kept: str = "") -> Done:
    """What a removal took away from the cluster (nothing, when nothing was there)."""
    note = f" ({kept})" if kept else ""
    lines = [f"removed {r}{note}" for r in removed] or [f"nothing to remove at {where}"]
    return Done("\n".join(lines), {"removed": removed, "deployment": where})


def compile_pipeline(settings: Settings, output: Path, image: str) -> Done:
    """Compile the training pipeline (in `image`, else the settings' image) to `output`.

    Raises:
        UsageError: `output` is a folder, or not a `.yaml` file name.
        PipelineError: `output` cannot be written.
    """
    # kfp, Docker SDK: this task only
    from hello_kubeflow.pipeline.local import compile_pipeline as compile_to

    if output.is_dir():
        raise UsageError(
            f"--output {output} is a folder: give a file name, e.g. {output / 'job.yaml'}"
        )
    if output.suffix.lower() not in (".yaml", ".yml"):
        raise UsageError(
            f"--output {output}: the pipeline is written as KFP IR YAML: give a file name "
            "ending in .yaml, e.g. job.yaml"
        )
    try:
        path = compile_to(settings, output, image=image or None)
        return Done(f"compiled pipeline written to {path}", {"path": str(path)})
    except OSError as exc:
        raise PipelineError(
            f"--output {output}: cannot write it ({exc.strerror}): choose a folder you can write to"
        ) from None


def train(
    settings: Settings,
    *,
    runner: str,
    train_limit: int,
    test_limit: int,
    dry_run: bool,
) -> Result:
    """Run the pipeline locally (kfp.local) or on Kubeflow Pipelines, or plan a cluster run.

    Raises:
        UsageError: `--dry-run` locally, or `--runner` on a cluster.
    """
    # kfp, Docker SDK: this task only
    from hello_kubeflow.pipeline.local import RunOptions, run_local

    cluster = settings.mode == "cluster"
    refuse({"--dry-run": dry_run and not cluster}, "it shows a cluster run: add --mode cluster")
    refuse({"--runner": bool(runner) and cluster}, "a cluster run's steps run in its pods")
    options = RunOptions.from_settings(settings, train_limit=train_limit, test_limit=test_limit)
    if cluster:
        # kfp, kubernetes: cluster mode only
        from hello_kubeflow.kfp.cluster_run import plan, train_on_cluster

        return plan(settings, options) if dry_run else train_on_cluster(settings, options)
    return run_local(settings, options, runner=runner or "subprocess")


def serve(settings: Settings, *, model: str, container: bool, host_given: bool) -> None:
    """Serve the model here, or in the project image (`container`), until Ctrl-C.

    Raises:
        UsageError: `--host` with `--container`.
    """
    # the server's stack: this task only
    from hello_kubeflow.serving.server import resolve_model_dir, run_server

    refuse(
        {"--host": host_given and container},
        "the container's port is published on 127.0.0.1 only",
    )
    model_dir = resolve_model_dir(settings, model)
    if container:
        # Docker SDK: --container only
        from hello_kubeflow.images.container import run_server_container

        run_server_container(settings, model_dir)
    else:
        run_server(settings, model_dir)


def query(
    settings: Settings,
    *,
    index: int,
    image: str,
    protocol: str,
    plot: str,
    count: int,
    url: str,
) -> Result:
    """Query the local server, or the model served in the cluster through its gateway.

    Raises:
        UsageError: `--count` with `--image` or `--plot`; `--protocol` in cluster mode.
    """
    if count and (image or plot):
        raise UsageError(
            "--count sends MNIST test images and prints the accuracy; "
            "--image and --plot are for one digit: drop one or the other"
        )
    cluster = settings.mode == "cluster"
    refuse(
        {"--protocol": bool(protocol) and cluster}, "in cluster mode the serving system picks it"
    )
    if url:  # the gateway in cluster mode, the server itself locally
        field = "gateway_url" if cluster else "query_url"
        settings = settings.override({field: url}, {field: "--url"})
    if cluster:
        from hello_kubeflow.query.cluster import query_cluster  # kubernetes: cluster mode only

        return query_cluster(
            settings, index=index, image=image, plot=plot, count=count, start=max(index, 0)
        )
    # requests, tenacity, orjson: not in `inv train`
    from hello_kubeflow.query.client import query_accuracy, query_digit

    protocol = protocol or "seldon"
    if count:
        return query_accuracy(settings, count=count, start=max(index, 0), protocol=protocol)
    return query_digit(settings, index=index, image=image, protocol=protocol, plot=plot)


def wait(settings: Settings) -> WaitResult:
    """Wait until every pod of `HK_WAIT_NAMESPACES` (all, when empty) is ready."""
    from hello_kubeflow.kube.client import api_client  # kubernetes: the cluster tasks only
    from hello_kubeflow.kube.wait import wait_for_pods

    api = api_client(*settings.kube_access)
    namespaces, timeout = settings.wait_namespaces, settings.wait_timeout
    return wait_for_pods(api, namespaces, timeout, settings.wait_crash_grace)


def status(settings: Settings) -> Snapshot:
    """Judge every pod of `HK_WAIT_NAMESPACES` (all, when empty) once."""
    from hello_kubeflow.kube.client import api_client  # kubernetes: the cluster tasks only
    from hello_kubeflow.kube.wait import cluster_status

    api = api_client(*settings.kube_access)
    return cluster_status(api, settings.wait_namespaces)


def undeploy(settings: Settings) -> Done:
    """Remove the model served in the cluster."""
    from hello_kubeflow.kfp.cluster_run import undeploy_model  # kfp, kubernetes: this task only

    where = f"{settings.namespace}/{settings.deployment_name}"
    return _removed(where, undeploy_model(settings))


def notebook(
    settings: Settings,
    *,
    cluster_options: dict[str, bool],
    local_options: dict[str, bool],
    delete: bool,
    announce: Callable[[str], None],
) -> Result | None:
    """Open (or `delete`) a Kubeflow Notebook, or run the image as a notebook server here.

    Args:
        cluster_options, local_options: option -> given, for the options only that mode uses.
        announce: told the local server's URL as soon as it listens.

    Returns:
        The Notebook opened or what was deleted; None locally (the server ran until Ctrl-C).

    Raises:
        UsageError: an option of the other mode.
        CheckoutError: locally, outside a checkout (there is nothing to mount).
    """
    if settings.mode != "cluster":
        refuse(
            {**cluster_options, "--delete": delete}, "they are for a cluster: add --mode cluster"
        )
        # Docker SDK: local mode only
        from hello_kubeflow.notebook.local import run_notebook_container

        workdir = require_checkout(settings.project_root, "notebook")
        run_notebook_container(settings, workdir, announce=announce)
        return None
    refuse(local_options, "it is for the local notebook server (--mode local)")
    # kubernetes: cluster mode only
    from hello_kubeflow.notebook.cluster import delete_notebook, open_notebook

    if delete:
        where = f"{settings.namespace}/{settings.notebook_name}"
        return _removed(where, delete_notebook(settings), kept="its workspace volume is kept")
    return open_notebook(settings)
