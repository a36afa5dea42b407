"""One function a task: the choice between local, cluster and container lives here.

Each function takes the settings the task built and the options as given
(`""` or 0: not given), refuses options that do nothing in the chosen mode
(saying why), and returns a result with `describe()` and `as_dict()`. The
modules it calls are imported inside, so `inv --list` imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hello_kubeflow.cli.options import FLAGS, Result, refuse
from hello_kubeflow.errors import PipelineError, UsageError
from hello_kubeflow.project import require_checkout
from hello_kubeflow.query.client import query_accuracy, query_digit
from hello_kubeflow.settings import Settings

if TYPE_CHECKING:
    from hello_kubeflow.kube.report import Snapshot
    from hello_kubeflow.kube.wait import WaitResult

DEFAULT_RUNNER = "subprocess"
DEFAULT_PROTOCOL = "seldon"


@dataclass(frozen=True)
class Compiled:
    """A pipeline written as KFP IR YAML."""

    path: Path

    def describe(self) -> str:
        """One line for a person."""
        return f"compiled pipeline written to {self.path}"

    def as_dict(self) -> dict[str, Any]:
        """Where the YAML went."""
        return {"path": str(self.path)}


@dataclass(frozen=True)
class Removed:
    """What a removal took away from the cluster (nothing, when nothing was there)."""

    where: str
    removed: list[str] = field(default_factory=list)
    kept: str = ""

    def describe(self) -> str:
        """One line per object removed, or that nothing was."""
        if not self.removed:
            return f"nothing to remove at {self.where}"
        kept = f" ({self.kept})" if self.kept else ""
        return "\n".join(f"removed {r}{kept}" for r in self.removed)

    def as_dict(self) -> dict[str, Any]:
        """Where, and what was removed."""
        return {"removed": self.removed, "deployment": self.where}


def compile_pipeline(settings: Settings, output: Path, image: str) -> Compiled:
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
        return Compiled(compile_to(settings, output, image=image or None))
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
    return run_local(settings, options, runner=runner or DEFAULT_RUNNER)


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
        settings = settings.override({"gateway_url" if cluster else "query_url": url}, FLAGS)
    if cluster:
        from hello_kubeflow.query.cluster import query_cluster  # kubernetes: cluster mode only

        return query_cluster(
            settings, index=index, image=image, plot=plot, count=count, start=max(index, 0)
        )
    protocol = protocol or DEFAULT_PROTOCOL
    if count:
        return query_accuracy(settings, count=count, start=max(index, 0), protocol=protocol)
    return query_digit(settings, index=index, image=image, protocol=protocol, plot=plot)


def wait(settings: Settings) -> WaitResult:
    """Wait until every pod of `HK_WAIT_NAMESPACES` (all, when empty) is ready."""
    from hello_kubeflow.kube.client import api_client  # kubernetes: the cluster tasks only
    from hello_kubeflow.kube.wait import wait_for_pods

    api = api_client(settings.kubeconfig, settings.kube_context, settings.kube_request_timeout)
    namespaces, timeout = settings.wait_namespaces, settings.wait_timeout
    return wait_for_pods(api, namespaces, timeout, settings.wait_crash_grace)


def status(settings: Settings) -> Snapshot:
    """Judge every pod of `HK_WAIT_NAMESPACES` (all, when empty) once."""
    from hello_kubeflow.kube.client import api_client  # kubernetes: the cluster tasks only
    from hello_kubeflow.kube.wait import cluster_status

    api = api_client(settings.kubeconfig, settings.kube_context, settings.kube_request_timeout)
    return cluster_status(api, settings.wait_namespaces)


def undeploy(settings: Settings) -> Removed:
    """Remove the model served in the cluster."""
    from hello_kubeflow.kfp.cluster_run import undeploy_model  # kfp, kubernetes: this task only

    where = f"{settings.namespace}/{settings.deployment_name}"
    return Removed(where, undeploy_model(settings))


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
        settings: the settings, the command line's on top.
        cluster_options: option -> given, for the options only cluster mode uses.
        local_options: option -> given, for the options only local mode uses.
        delete: delete the cluster Notebook instead of opening it.
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
        return Removed(where, delete_notebook(settings), kept="its workspace volume is kept")
    return open_notebook(settings)
