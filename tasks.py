"""The command line: `inv --list` shows every task. Each task is a thin shell.

A task builds its settings (`settings_for`: the environment and the project
root's `.env`, its options on top), makes one call into the package and prints
the result (`emit`: text, or with `--json` one JSON object on the last line).
The package's own error (`HelloKubeflowError`) becomes a clean exit: the
message on stderr, exit code 1; a malformed option value (`--port abc`) is
refused the same way while invoke parses it. Progress goes to stderr.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from hello_kubeflow.cli.options import emit, refuse, settings_for, task, user_errors
from hello_kubeflow.project import use_project_root
from hello_kubeflow.settings import MAX_SERVE_WORKERS

ROOT = Path(__file__).resolve().parent  # the folder invoke found tasks.py in
use_project_root(ROOT)

JSON_HELP = "print the result as one JSON object on the last line, instead of the text"


# ---- data, training, the pipeline


@task(
    help={
        "output": "YAML file to write (default: job.yaml)",
        "image": "image the steps run in (default: the pushed image by digest)",
        "json": JSON_HELP,
    }
)
def compile(c: Any, output: str = "job.yaml", image: str = "", json: bool = False) -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from hello_kubeflow.cli import commands

    settings = settings_for()
    with user_errors():
        emit(commands.compile_pipeline(settings, Path(output), image), json)


@task(
    help={
        "model": "model to train: forest (the chapter's random forest) or mlp (a small "
        "neural network, >= 98%); default: HK_MODEL_KIND or forest",
        "preset": "training preset: default (best) or book (the original: 30 trees, 35k "
        "images); the mlp has only default",
        "trees": "number of trees (default: the preset's; forest only)",
        "seed": "random seed for sampling and training (default: HK_SEED or 42)",
        "runner": "local runner: subprocess (default: this environment) or docker (the "
        "project image)",
        "train_limit": "use only the first N training images (0: all; for quick tries)",
        "test_limit": "use only the first N test images (0: all)",
        "json": JSON_HELP,
        "mode": "local (kfp.local) or cluster (Kubeflow Pipelines, model served in the "
        "cluster); default: HK_MODE or local",
        "dry_run": "cluster mode: print the compiled pipeline, image, endpoint, experiment "
        "and parameters, contacting nothing",
    }
)
def train(
    c: Any,
    model: str = "",
    preset: str = "",
    trees: int | None = None,
    seed: int | None = None,
    runner: str = "",
    train_limit: int = 0,
    test_limit: int = 0,
    json: bool = False,
    mode: str = "",
    dry_run: bool = False,
) -> None:
    """Train the MNIST model by running the pipeline (locally, or on Kubeflow Pipelines)."""
    settings = settings_for(
        model_kind=model or None,
        preset=preset or None,
        n_estimators=trees,  # checked here, not halfway through the pipeline
        seed=seed,
        mode=mode or None,
    )
    local = settings.mode == "local"
    if local:
        # This process only waits on the steps: collecting while kfp's 3,000 modules are
        # imported, and once more at exit (`gc.freeze` below), costs it about 0.3 s.
        gc.disable()
    from hello_kubeflow.cli import commands

    try:
        with user_errors():
            done = commands.train(
                settings,
                runner=runner,
                train_limit=train_limit,
                test_limit=test_limit,
                dry_run=dry_run,
            )
        emit(done, json)
    finally:
        if local:  # a task chained after this one (`inv train serve`) collects as usual
            gc.freeze()
            gc.enable()


@task(
    help={
        "models": "models to compare, model[:preset] separated by commas (default: "
        "forest:default,forest:book,mlp:default)",
        "seed": "random seed of every model (default: HK_SEED or 42)",
        "train_limit": "train on the first N training images only (0: all)",
        "test_limit": "score on the first N test images only (0: all)",
        "retrain": "train every model again, even when a recorded run with the same "
        "seed, limits and data exists",
        "chart": "where the PNG chart goes (default: <output dir>/comparison.png)",
        "json": JSON_HELP,
    }
)
def compare(
    c: Any,
    models: str = "forest:default,forest:book,mlp:default",
    seed: int | None = None,
    train_limit: int = 0,
    test_limit: int = 0,
    retrain: bool = False,
    chart: str = "",
    json: bool = False,
) -> None:
    """Compare models side by side: accuracy, training time, size, latency, confusions."""
    from hello_kubeflow.cli.compare import parse_models
    from hello_kubeflow.compare.comparison import compare_models

    settings = settings_for(seed=seed)
    with user_errors():
        done = compare_models(
            settings,
            parse_models(models),
            seed=settings.seed,
            train_limit=train_limit,
            test_limit=test_limit,
            retrain=retrain,
            chart=Path(chart) if chart else None,
        )
    emit(done, json)


@task(
    help={
        "keep": "how many of the newest completed runs (and logs) to keep, besides every run "
        "a record names (default: 3)",
        "dry_run": "list what would be removed; remove nothing",
        "caches": "instead of runs, remove the project's caches in HK_CACHE_DIR (downloaded "
        "MNIST, rendered manifests, the Seldon reference venv, actionlint)",
        "json": JSON_HELP,
    }
)
def clean(
    c: Any, keep: int | None = None, dry_run: bool = False, caches: bool = False, json: bool = False
) -> None:
    """Remove failed and old local runs and logs, keeping the newest and every recorded run."""
    from hello_kubeflow.pipeline.caches import clean_caches
    from hello_kubeflow.pipeline.clean import clean_outputs

    settings = settings_for()
    with user_errors():
        if caches:
            refuse({f"--keep={keep}": keep is not None}, "--caches removes caches, not runs")
            emit(clean_caches(settings.cache_dir, dry_run=dry_run), json)
            return
        emit(
            clean_outputs(settings.output_dir, keep=3 if keep is None else keep, dry_run=dry_run),
            json,
        )


# ---- serving and querying


@task(
    metavars={"model": "DIR"},
    help={
        "model": "model directory to serve (default: HK_MODEL_DIR, else the latest inv train)",
        "port": "port to listen on, 0: any free one (default: HK_SERVE_PORT or 9000)",
        "host": "address to bind (default: HK_SERVE_HOST or 127.0.0.1)",
        "workers": f"worker processes, 1 to {MAX_SERVE_WORKERS} (default: HK_SERVE_WORKERS or 1)",
        "container": "run the server in the project image (model mounted read-only, "
        "port published on 127.0.0.1 only)",
    },
)
def serve(
    c: Any,
    model: str = "",
    port: int | None = None,
    host: str = "",
    workers: int | None = None,
    container: bool = False,
) -> None:
    """Serve the trained model (Seldon protocol and Open Inference V2) until Ctrl-C."""
    from hello_kubeflow.cli import commands

    settings = settings_for(serve_port=port, serve_host=host, serve_workers=workers)
    with user_errors():
        commands.serve(settings, model=model, container=container, host_given=bool(host))


@task(
    metavars={"image": "PNG"},
    help={
        "index": "MNIST test image to send (default -1: a random one)",
        "image": "PNG of a drawn digit to send instead (any size; made MNIST-like)",
        "protocol": "local mode: seldon (default) or v2 (Open Inference Protocol)",
        "plot": "write the digit beside a bar chart of its probabilities to this PNG",
        "count": "send N test images (batched, from --index or 0) and print the accuracy",
        "url": "server URL (default: HK_QUERY_URL, else the local server); in cluster mode "
        "the gateway's address (default: HK_GATEWAY_URL, else a port-forward)",
        "json": JSON_HELP,
        "mode": "local or cluster (the model served in the cluster, through its gateway; "
        "the protocol follows the serving system); default: HK_MODE or local",
        "wait": "seconds to wait for a server that is still starting (default: HK_QUERY_WAIT, "
        "else 0 for a local URL: fail at once if nothing listens)",
    },
)
def query(
    c: Any,
    index: int = -1,
    image: str = "",
    protocol: str = "",
    plot: str = "",
    count: int = 0,
    url: str = "",
    json: bool = False,
    mode: str = "",
    wait: float | None = None,
) -> None:
    """Query the model server with a digit and sanity-check the answer."""
    from hello_kubeflow.cli import commands

    settings = settings_for(mode=mode, query_wait=wait)
    with user_errors():
        result = commands.query(
            settings, index=index, image=image, protocol=protocol, plot=plot, count=count, url=url
        )
    emit(result, json)


@task(
    help={
        "model": "model to train: forest or mlp (default: HK_MODEL_KIND or forest)",
        "preset": "training preset: default or book (forest only)",
        "trees": "number of trees (default: the preset's)",
        "train_limit": "use only the first N training images (0: all; for quick tries)",
        "test_limit": "use only the first N test images (0: all)",
        "runner": "local runner: subprocess or docker",
        "protocol": "query protocol: seldon (default) or v2",
        "count": "also send N test images through the server and print the accuracy",
        "plot": "write the queried digit and its probabilities to this PNG",
        "json": JSON_HELP,
    }
)
def demo(
    c: Any,
    model: str = "",
    preset: str = "",
    trees: int | None = None,
    train_limit: int = 0,
    test_limit: int = 0,
    runner: str = "subprocess",
    protocol: str = "seldon",
    count: int = 0,
    plot: str = "",
    json: bool = False,
) -> None:
    """Train, serve in the background, query, then stop the server: the whole walkthrough."""
    from hello_kubeflow.cli.demo import run_demo
    from hello_kubeflow.pipeline.local import RunOptions

    settings = settings_for(model_kind=model, preset=preset, n_estimators=trees)
    with user_errors():
        options = RunOptions.from_settings(settings, train_limit=train_limit, test_limit=test_limit)
        summary = run_demo(
            settings, options, runner=runner, protocol=protocol, count=count, plot=plot
        )
    emit(summary, json)


# ---- the image


@task(
    help={
        "no_push": "build only; do not push (CONTAINER_REGISTRY is then optional)",
        "dry_run": "print what would be built and pushed; contact no Docker engine",
        "tag": "image tag (default: HK_IMAGE_TAG, else the git commit, -dirty if changed)",
        "base_image": "Dockerfile BASE_IMAGE (default: HK_BASE_IMAGE, else a Kubeflow "
        "notebook image)",
        "json": JSON_HELP,
    }
)
def build_push(
    c: Any,
    no_push: bool = False,
    dry_run: bool = False,
    tag: str = "",
    base_image: str = "",
    json: bool = False,
) -> None:
    """Build the project image and push it to $CONTAINER_REGISTRY, recording its digest."""
    from hello_kubeflow.images.publish import build_push as build_and_push

    settings = settings_for()
    with user_errors():
        result = build_and_push(
            settings, push=not no_push, dry_run=dry_run, tag=tag, base_image=base_image
        )
    emit(result, json)


# ---- setup, wait, status


@task(
    help={
        "mode": "local (check tools, make MNIST ready) or cluster (install Kubeflow, wait "
        "for its pods); default: HK_MODE or local",
        "profile": "cluster mode: pipelines (Kubeflow Pipelines + a serving system; fits "
        "minikube/kind) or full (the Kubeflow manifests' example); default: HK_PROFILE",
        "dry_run": "print the plan (versions, steps, images, resources); change nothing",
        "render": "write the profile's manifests, fully rendered, into this folder (needs "
        "network) for an air-gapped HK_MANIFESTS_DIR=DIR inv setup --mode cluster",
        "serving": "cluster mode: seldon or kserve (default: HK_SERVING)",
        "json": JSON_HELP,
    }
)
def setup(
    c: Any,
    mode: str = "",
    profile: str = "",
    serving: str = "",
    dry_run: bool = False,
    render: str = "",
    json: bool = False,
) -> None:
    """Prepare the workflow: tools and data locally, or Kubeflow on the cluster."""
    from hello_kubeflow.cli.setup import setup as prepare

    settings = settings_for(mode=mode or None, profile=profile or None, serving=serving or None)
    with user_errors():
        report = prepare(settings, dry_run=dry_run, render=Path(render) if render else None)
    emit(report, json)


@task(
    help={
        "namespaces": "comma-separated namespaces to wait for (default: HK_WAIT_NAMESPACES, "
        "else all)",
        "timeout": "seconds before giving up (default: HK_WAIT_TIMEOUT, 1800)",
        "json": JSON_HELP,
    }
)
def wait(c: Any, namespaces: str = "", timeout: float | None = None, json: bool = False) -> None:
    """Wait until every pod is ready or completed; stop at once on a broken one."""
    from hello_kubeflow.cli import commands

    settings = settings_for(wait_namespaces=namespaces, wait_timeout=timeout)
    with user_errors():
        emit(commands.wait(settings), json)


@task(
    help={
        "namespaces": "comma-separated namespaces (default: HK_WAIT_NAMESPACES, else all)",
        "json": JSON_HELP,
    }
)
def status(c: Any, namespaces: str = "", json: bool = False) -> None:
    """Show which pods are not ready, and why, in the current cluster."""
    from hello_kubeflow.cli import commands

    settings = settings_for(wait_namespaces=namespaces)
    with user_errors():
        emit(commands.status(settings), json)


# ---- cluster mode


@task(
    help={
        "namespace": "namespace of the served model (default: HK_NAMESPACE or kubeflow)",
        "name": "name of the served model (default: HK_DEPLOYMENT_NAME or mnist-classifier)",
        "json": JSON_HELP,
    }
)
def undeploy(c: Any, namespace: str = "", name: str = "", json: bool = False) -> None:
    """Remove the model served in the cluster (its SeldonDeployment or InferenceService)."""
    from hello_kubeflow.cli import commands

    settings = settings_for(namespace=namespace or None, deployment_name=name or None)
    with user_errors():
        emit(commands.undeploy(settings), json)


# ---- the notebook server


@task(
    help={
        "mode": "local (the image as a notebook server on 127.0.0.1, this checkout mounted) "
        "or cluster (a Kubeflow Notebook in your profile namespace); default: HK_MODE or local",
        "name": "cluster: the Notebook's name (default: HK_NOTEBOOK_NAME or hello-kubeflow)",
        "namespace": "cluster: your profile namespace (default: HK_NAMESPACE)",
        "cpu": "cluster: CPU to request (default: HK_NOTEBOOK_CPU or 1)",
        "memory": "cluster: memory to request (default: HK_NOTEBOOK_MEMORY or 2Gi)",
        "timeout": "cluster: seconds to wait until ready (default: HK_NOTEBOOK_TIMEOUT, 600)",
        "port": "local: port on 127.0.0.1 (default: HK_NOTEBOOK_PORT or 8888)",
        "delete": "cluster: delete the Notebook (its workspace volume is kept)",
        "json": "cluster: " + JSON_HELP,
    }
)
def notebook(
    c: Any,
    mode: str = "",
    name: str = "",
    namespace: str = "",
    cpu: str = "",
    memory: str = "",
    timeout: float | None = None,
    port: int | None = None,
    delete: bool = False,
    json: bool = False,
) -> None:
    """Open the project's notebook server: a Kubeflow Notebook, or the image run locally."""
    from hello_kubeflow.cli import commands

    settings = settings_for(
        mode=mode or None,
        notebook_name=name or None,
        namespace=namespace or None,
        notebook_cpu=cpu or None,
        notebook_memory=memory or None,
        notebook_timeout=timeout,
        notebook_port=port,
    )
    given = {"--name": name, "--namespace": namespace, "--cpu": cpu, "--memory": memory}
    with user_errors():
        result = commands.notebook(
            settings,
            cluster_options={
                **{flag: bool(value) for flag, value in given.items()},
                "--timeout": timeout is not None,
                "--json": json,
            },
            local_options={"--port": port is not None},
            delete=delete,
            announce=lambda url: print(f"open {url}", flush=True),
        )
    if result is not None:
        emit(result, json)


# ---- the project itself


@task(
    help={
        "quick": "skip tests marked slow (the full suite runs them)",
        "pytest_args": "extra arguments for pytest, e.g. '-k settings -x'",
    }
)
def test(c: Any, quick: bool = False, pytest_args: str = "") -> None:
    """Run the checks: ruff (lint and format), mypy (strict), then the whole test suite."""
    from hello_kubeflow.console import colour_allowed

    python = sys.executable  # the environment inv runs in, activated or not
    # The commands as typed, bold only on a terminal that allows colours (NO_COLOR).
    shown = {"echo": True, "echo_format": "{command}"}
    if colour_allowed(sys.stdout):
        shown = {"echo": True}
    with c.cd(str(ROOT)):  # the checks cover the whole project, from any subfolder
        c.run(f"{python} -m ruff check .", **shown)
        c.run(f"{python} -m ruff format --check .", **shown)
        c.run(f"{python} -m mypy", **shown)
        marker = "-m 'not slow'" if quick else ""
        c.run(f"{python} -m pytest {marker} {pytest_args}".strip(), **shown)
