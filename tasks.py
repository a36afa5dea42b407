"""The command line: `inv --list` shows every task. Each task is a thin shell.

A task loads settings once, calls one function of the package and turns the
package's own error (`HelloKubeflowError`) into a clean exit: the message on
stderr, exit code 1. Progress goes to stderr through `logging`; results go to
stdout (with `--json`, one JSON object as the last line).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from invoke import Exit, task

from hello_kubeflow.console import configure_logging
from hello_kubeflow.errors import HelloKubeflowError
from hello_kubeflow.settings import Settings, load_settings


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the package's errors into a one-message exit; keep tracebacks for bugs."""
    try:
        yield
    except HelloKubeflowError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


# The options whose name differs from the setting they set, for error messages.
_FLAGS = {
    "model_kind": "--model",
    "n_estimators": "--trees",
    "serve_port": "--port",
    "serve_host": "--host",
    "serve_workers": "--workers",
    "query_url": "--url",
    "query_wait": "--wait",
    "gateway_url": "--url",
    "wait_timeout": "--timeout",
    "wait_namespaces": "--namespaces",
    "deployment_name": "--name",
    "notebook_name": "--name",
    "notebook_cpu": "--cpu",
    "notebook_memory": "--memory",
    "notebook_port": "--port",
    "notebook_timeout": "--timeout",
}


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, with command-line values on top."""
    configure_logging()
    given = {k: v for k, v in overrides.items() if v not in (None, "")}
    with _user_errors():
        return load_settings().override(given, _FLAGS)


# ---- issue 2: data, training, the pipeline


@task(
    help={
        "output": "YAML file to write (default: job.yaml)",
        "image": "image the steps run in (default: the pushed image by digest)",
    }
)
def compile(c: Any, output: str = "job.yaml", image: str = "") -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from pathlib import Path

    from hello_kubeflow.runs import compile_pipeline

    settings = _settings()
    with _user_errors():
        path = compile_pipeline(settings, Path(output), image=image or None)
    print(f"compiled pipeline written to {path}")


@task(
    help={
        "model": "model to train: forest (the chapter's random forest) or mlp (a small "
        "neural network, >= 98%); default: HK_MODEL_KIND or forest",
        "preset": "training preset: default (best) or book (the original: 30 trees, 35k "
        "images); the mlp has only default",
        "trees": "number of trees (default: the preset's; forest only)",
        "seed": "random seed for sampling and training (default: HK_SEED or 42)",
        "runner": "local runner: subprocess (this environment) or docker (the project image)",
        "train_limit": "use only the first N training images (0: all; for quick tries)",
        "test_limit": "use only the first N test images (0: all)",
        "json": "print the summary as one JSON object on the last line",
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
    trees: int = 0,
    seed: int = -1,
    runner: str = "subprocess",
    train_limit: int = 0,
    test_limit: int = 0,
    json: bool = False,
    mode: str = "",
    dry_run: bool = False,
) -> None:
    """Train the MNIST model by running the pipeline (locally, or on Kubeflow Pipelines)."""
    from hello_kubeflow.runs import RunOptions, run_local

    settings = _settings(
        model_kind=model or None,
        preset=preset or None,
        n_estimators=trees or None,  # checked here, not halfway through the pipeline
        seed=seed if seed != -1 else None,  # -1: not given; other negatives are refused
        mode=mode or None,
    )
    if dry_run and settings.mode != "cluster":
        raise Exit("error: --dry-run shows a cluster run: add --mode cluster", code=1)
    with _user_errors():
        options = RunOptions.from_settings(settings, train_limit=train_limit, test_limit=test_limit)
        if settings.mode == "cluster":
            from hello_kubeflow.cluster import plan, train_on_cluster

            done: Any = plan(settings, options) if dry_run else train_on_cluster(settings, options)
        else:
            done = run_local(settings, options, runner=runner)
    print(done.to_json() if json else done.describe())


@task(
    help={
        "models": "models to compare, model[:preset] separated by commas (default: "
        "forest:default,forest:book,mlp:default)",
        "seed": "random seed of every model (default: HK_SEED or 42)",
        "train_limit": "train on the first N training images only (0: all)",
        "test_limit": "score on the first N test images only (0: all)",
        "retrain": "train every model again, even when a recorded run with the same "
        "seed and limits exists",
        "chart": "where the PNG chart goes (default: <output dir>/comparison.png)",
        "json": "print the comparison as one JSON object on the last line",
    }
)
def compare(
    c: Any,
    models: str = "forest:default,forest:book,mlp:default",
    seed: int = -1,
    train_limit: int = 0,
    test_limit: int = 0,
    retrain: bool = False,
    chart: str = "",
    json: bool = False,
) -> None:
    """Compare models side by side: accuracy, training time, size, latency, confusions."""
    import json as json_lib
    from pathlib import Path

    from hello_kubeflow.compare import compare_models, parse_models

    settings = _settings(seed=seed if seed != -1 else None)
    with _user_errors():
        chosen = parse_models(models)
        done = compare_models(
            settings,
            chosen,
            seed=settings.seed,
            train_limit=train_limit,
            test_limit=test_limit,
            retrain=retrain,
            chart=Path(chart) if chart else None,
        )
    print(json_lib.dumps(done.as_dict()) if json else done.describe())


@task(
    help={
        "keep": "how many of the newest runs (and logs) to keep, besides the latest model's "
        "run (default: 3)",
        "dry_run": "list what would be removed; remove nothing",
        "json": "print the result as one JSON object on the last line",
    }
)
def clean(c: Any, keep: int = 3, dry_run: bool = False, json: bool = False) -> None:
    """Remove old local runs and logs, keeping the newest and the latest model's run."""
    import json as json_lib

    from hello_kubeflow.clean import clean_outputs

    settings = _settings()
    with _user_errors():
        result = clean_outputs(settings, keep=keep, dry_run=dry_run)
    print(json_lib.dumps(result.as_dict()) if json else result.describe())


# ---- issue 3: serving and querying


@task(
    help={
        "model": "model directory to serve (default: HK_MODEL_DIR, else the latest inv train)",
        "port": "port to listen on (default: HK_SERVE_PORT or 9000)",
        "host": "address to bind (default: HK_SERVE_HOST or 127.0.0.1)",
        "workers": "worker processes (default: HK_SERVE_WORKERS or 1)",
        "container": "run the server in the project image (model mounted read-only, "
        "port published on 127.0.0.1 only)",
    }
)
def serve(
    c: Any,
    model: str = "",
    port: int = 0,
    host: str = "",
    workers: int = 0,
    container: bool = False,
) -> None:
    """Serve the trained model (Seldon protocol and Open Inference V2) until Ctrl-C."""
    from hello_kubeflow.serving.server import resolve_model_dir, run_server

    if container and host:
        raise Exit(
            "error: --host does not apply with --container: the container's port is "
            "published on 127.0.0.1 only",
            code=1,
        )
    settings = _settings(
        serve_port=port or None, serve_host=host or None, serve_workers=workers or None
    )
    with _user_errors():
        if container:
            from hello_kubeflow.images.container import run_server_container

            run_server_container(settings, resolve_model_dir(settings, model))
        else:
            run_server(settings, resolve_model_dir(settings, model))


@task(
    help={
        "index": "MNIST test image to send (default -1: a random one)",
        "image": "PNG of a drawn digit to send instead (any size; made MNIST-like)",
        "protocol": "seldon (default) or v2 (Open Inference Protocol)",
        "plot": "write the digit beside a bar chart of its probabilities to this PNG",
        "count": "send N test images (batched, from --index or 0) and print the accuracy",
        "url": "server URL (default: HK_QUERY_URL, else the local server); in cluster mode "
        "the gateway's address (default: HK_GATEWAY_URL, else a port-forward)",
        "json": "print the result as one JSON object on the last line",
        "mode": "local or cluster (the model served in the cluster, through its gateway; "
        "the protocol follows the serving system); default: HK_MODE or local",
        "wait": "seconds to wait for a server that is still starting (default: HK_QUERY_WAIT, "
        "else 0 for a local URL: fail at once if nothing listens)",
    }
)
def query(
    c: Any,
    index: int = -1,
    image: str = "",
    protocol: str = "seldon",
    plot: str = "",
    count: int = 0,
    url: str = "",
    json: bool = False,
    mode: str = "",
    wait: float = -1.0,
) -> None:
    """Query the model server with a digit and sanity-check the answer."""
    import json as json_lib

    from hello_kubeflow.query import query_accuracy, query_digit

    if count and (image or plot):
        raise Exit(
            "error: --count sends MNIST test images and prints the accuracy; "
            "--image and --plot are for one digit: drop one or the other",
            code=1,
        )
    settings = _settings(mode=mode or None, query_wait=wait if wait != -1.0 else None)
    with _user_errors():
        if url:  # the gateway in cluster mode, the server itself locally
            settings = settings.override(
                {"gateway_url" if settings.mode == "cluster" else "query_url": url}, _FLAGS
            )
        if settings.mode == "cluster":
            from hello_kubeflow.cluster_query import query_cluster

            result: Any = query_cluster(
                settings, index=index, image=image, plot=plot, count=count, start=max(index, 0)
            )
        elif count:
            result = query_accuracy(settings, count=count, start=max(index, 0), protocol=protocol)
        else:
            result = query_digit(settings, index=index, image=image, protocol=protocol, plot=plot)
    print(json_lib.dumps(result.as_dict()) if json else result.describe())


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
        "json": "print the summary as one JSON object on the last line",
    }
)
def demo(
    c: Any,
    model: str = "",
    preset: str = "",
    trees: int = 0,
    train_limit: int = 0,
    test_limit: int = 0,
    runner: str = "subprocess",
    protocol: str = "seldon",
    count: int = 0,
    plot: str = "",
    json: bool = False,
) -> None:
    """Train, serve in the background, query, then stop the server: the whole walkthrough."""
    import json as json_lib

    from hello_kubeflow.demo import run_demo
    from hello_kubeflow.runs import RunOptions

    settings = _settings(
        model_kind=model or None, preset=preset or None, n_estimators=trees or None
    )
    with _user_errors():
        options = RunOptions.from_settings(settings, train_limit=train_limit, test_limit=test_limit)
        summary = run_demo(
            settings, options, runner=runner, protocol=protocol, count=count, plot=plot
        )
    print(json_lib.dumps(summary.as_dict()) if json else summary.describe())


# ---- issue 4: the image


@task(
    help={
        "no_push": "build only; do not push (CONTAINER_REGISTRY is then optional)",
        "dry_run": "print what would be built and pushed; contact no Docker engine",
        "tag": "image tag (default: HK_IMAGE_TAG, else the git commit, -dirty if changed)",
        "base_image": "Dockerfile BASE_IMAGE (default: HK_BASE_IMAGE, else a Kubeflow "
        "notebook image)",
        "json": "print the result as one JSON object on the last line",
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
    import json as json_module

    from hello_kubeflow.images import build_push as build_and_push

    settings = _settings()
    with _user_errors():
        result = build_and_push(
            settings, push=not no_push, dry_run=dry_run, tag=tag, base_image=base_image
        )
    print(json_module.dumps(result.as_dict()) if json else result.describe())


# ---- issue 5: setup, wait, status


def _namespaces(text: str) -> tuple[str, ...] | None:
    """`a, b` -> ("a", "b"); "" -> None (the setting decides)."""
    return tuple(n.strip() for n in text.split(",") if n.strip()) or None


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
        "json": "also print the report as one JSON object on the last line",
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
    import json as json_lib
    from pathlib import Path

    from hello_kubeflow.prepare import setup as prepare

    settings = _settings(mode=mode or None, profile=profile or None, serving=serving or None)
    with _user_errors():
        report = prepare(settings, dry_run=dry_run, render=Path(render) if render else None)
    print(report.text())
    if json:
        print(json_lib.dumps(report.as_dict()))


@task(
    help={
        "namespaces": "comma-separated namespaces to wait for (default: HK_WAIT_NAMESPACES, "
        "else all)",
        "timeout": "seconds before giving up (default: HK_WAIT_TIMEOUT, 1800)",
    }
)
def wait(c: Any, namespaces: str = "", timeout: float = 0.0) -> None:
    """Wait until every pod is ready or completed; stop at once on a broken one."""
    from hello_kubeflow.kube.wait import wait_for_pods

    settings = _settings(
        wait_namespaces=_namespaces(namespaces), wait_timeout=timeout if timeout > 0 else None
    )
    with _user_errors():
        result = wait_for_pods(settings)
    print(result.summary())


@task(
    help={
        "namespaces": "comma-separated namespaces (default: HK_WAIT_NAMESPACES, else all)",
        "json": "also print the state as one JSON object on the last line",
    }
)
def status(c: Any, namespaces: str = "", json: bool = False) -> None:
    """Show which pods are not ready, and why, in the current cluster."""
    import json as json_lib

    from hello_kubeflow.kube.wait import cluster_status

    settings = _settings(wait_namespaces=_namespaces(namespaces))
    with _user_errors():
        snapshot = cluster_status(settings)
    print(snapshot.table())
    if json:
        print(json_lib.dumps(snapshot.as_dict()))


# ---- issue 6: cluster mode


@task(
    help={
        "namespace": "namespace of the served model (default: HK_NAMESPACE or kubeflow)",
        "name": "name of the served model (default: HK_DEPLOYMENT_NAME or mnist-classifier)",
        "json": "print what was removed as one JSON object on the last line",
    }
)
def undeploy(c: Any, namespace: str = "", name: str = "", json: bool = False) -> None:
    """Remove the model served in the cluster (its SeldonDeployment or InferenceService)."""
    import json as json_lib

    from hello_kubeflow.cluster import undeploy_model

    settings = _settings(namespace=namespace or None, deployment_name=name or None)
    with _user_errors():
        removed = undeploy_model(settings)
    where = f"{settings.namespace}/{settings.deployment_name}"
    if json:
        print(json_lib.dumps({"removed": removed, "deployment": where}))
    else:
        print("\n".join(f"removed {r}" for r in removed) or f"nothing to remove at {where}")


# ---- issue 16: the notebook server


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
    }
)
def notebook(
    c: Any,
    mode: str = "",
    name: str = "",
    namespace: str = "",
    cpu: str = "",
    memory: str = "",
    timeout: float = 0.0,
    port: int = 0,
    delete: bool = False,
) -> None:
    """Open the project's notebook server: a Kubeflow Notebook, or the image run locally."""
    settings = _settings(
        mode=mode or None,
        notebook_name=name or None,
        namespace=namespace or None,
        notebook_cpu=cpu or None,
        notebook_memory=memory or None,
        notebook_timeout=timeout if timeout > 0 else None,
        notebook_port=port or None,
    )
    if delete and settings.mode != "cluster":
        raise Exit("error: --delete removes a Notebook from the cluster: add --mode cluster", 1)
    with _user_errors():
        if settings.mode == "cluster":
            from hello_kubeflow.kube.notebooks import delete_notebook, open_notebook

            if delete:
                removed = delete_notebook(settings)
                where = f"{settings.namespace}/{settings.notebook_name}"
                print(
                    f"deleted {removed[0]} (its workspace volume is kept)"
                    if removed
                    else f"no Notebook {where} to delete"
                )
                return
            print(open_notebook(settings).describe())
        else:
            from pathlib import Path

            from hello_kubeflow.images.notebook_container import run_notebook_container

            def announce(url: str) -> None:
                print(f"open {url}", flush=True)

            run_notebook_container(settings, Path.cwd(), announce=announce)


# ---- the project itself


@task(
    help={
        "quick": "skip tests marked slow (the full suite runs them)",
        "pytest_args": "extra arguments for pytest, e.g. '-k settings -x'",
    }
)
def test(c: Any, quick: bool = False, pytest_args: str = "") -> None:
    """Run the checks: ruff (lint and format), mypy (strict), then the whole test suite."""
    python = sys.executable  # the environment inv runs in, activated or not
    c.run(f"{python} -m ruff check .", echo=True)
    c.run(f"{python} -m ruff format --check .", echo=True)
    c.run(f"{python} -m mypy", echo=True)
    marker = "-m 'not slow'" if quick else ""
    c.run(f"{python} -m pytest {marker} {pytest_args}".strip(), echo=True)
