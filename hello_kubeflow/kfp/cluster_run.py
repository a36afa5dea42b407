"""Cluster mode end to end: train on Kubeflow Pipelines, report the served model, remove it."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client

from hello_kubeflow.deploy.deploy import detect_serving, undeploy, wait_until_serving
from hello_kubeflow.deploy.model_manifests import SERVING_APIS, recorded_summary
from hello_kubeflow.deploy.pull_secret import (
    PULL_SECRET,
    RegistryLogin,
    ensure_pull_secret,
    registry_login,
)
from hello_kubeflow.errors import HelloKubeflowError, PrerequisiteError
from hello_kubeflow.gateway.endpoints import (
    KFP_NAMESPACE,
    Auth,
    describe_kfp_endpoint,
    kfp_endpoint,
)
from hello_kubeflow.gateway.login import gateway_auth
from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.kfp.profile_check import check_profile_namespace
from hello_kubeflow.kfp.remote import Patience, connect
from hello_kubeflow.kfp.run_pods import RunPodWatch
from hello_kubeflow.kfp.runs import (
    ensure_experiment,
    follow_run,
    start_run,
    step_names,
    upload_pipeline,
)
from hello_kubeflow.kfp.step_logs import explain_failed_step
from hello_kubeflow.kube.client import api_client
from hello_kubeflow.pipeline.definition import PIPELINE_NAME
from hello_kubeflow.pipeline.local import RunOptions, compile_pipeline
from hello_kubeflow.settings import Settings

log = logging.getLogger(__name__)

PIPELINE_FILE = "cluster-pipeline.yaml"


@dataclass(frozen=True)
class ClusterPlan:
    """What a cluster run will use; `--dry-run` prints it and stops."""

    package: str
    image: str
    pinned: bool
    endpoint: str
    auth: str
    experiment: str
    pipeline: str
    parameters: dict[str, Any]
    deployment: str
    pull_secret: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The plan as a JSON-serialisable dict."""
        return asdict(self)

    def describe(self) -> str:
        """The plan as a person reads it."""
        image = self.image
        if not self.pinned:
            image += " (NOT pinned by digest: run inv build-push)"
        lines = [
            f"compiled pipeline: {self.package}",
            f"image:      {image}",
            f"endpoint:   {self.endpoint}",
            f"auth:       {self.auth}",
            f"experiment: {self.experiment} (pipeline {self.pipeline})",
            "parameters:",
            *(f"  {k} = {v!r}" for k, v in sorted(self.parameters.items())),
            f"deploys:    {self.deployment}",
            f"pull secret: {self.pull_secret or 'none (a public registry)'}",
            "dry run: nothing was contacted",
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class ClusterRunSummary:
    """What a finished cluster run produced, as the served model records it."""

    run_id: str
    run_url: str
    state: str
    seconds: float
    experiment: str
    pipeline_version: str
    image: str
    serving: str
    namespace: str
    deployment_name: str
    accuracy: float | None = None
    model_uri: str = ""
    preset: str = ""
    n_estimators: int | None = None
    train_size: int | None = None
    test_size: int | None = None
    steps: dict[str, str] = field(default_factory=dict)
    model: str = "forest"

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-serialisable dict."""
        return asdict(self)

    def describe(self) -> str:
        """The summary as a person reads it."""
        lines = [f"run {self.run_id} {self.state} in {self.seconds:.1f} s: {self.run_url}"]
        if self.n_estimators is not None or self.train_size is not None:
            trees = f"{self.n_estimators} trees" if self.n_estimators is not None else "? trees"
            shape = "neural network" if self.model == "mlp" else trees
            images = f"{self.train_size:,}" if self.train_size is not None else "?"
            lines.append(
                f"trained: {self.model} model, {self.preset} preset, {shape}, "
                f"{images} training images"
            )
        if self.accuracy is not None:
            tested = f" on {self.test_size:,} images" if self.test_size else ""
            lines.append(f"test accuracy: {self.accuracy:.2%}{tested}")
        else:
            lines.append("test accuracy: unknown (the served model could not be read)")
        lines.append(f"model:   {self.model_uri or '(see the run in the UI)'}")
        kind = SERVING_APIS[self.serving].kind if self.serving in SERVING_APIS else self.serving
        lines.append(
            f"served:  {kind} {self.namespace}/{self.deployment_name} "
            "(query it: inv query --mode cluster)"
        )
        return "\n".join(lines)


def run_parameters(settings: Settings, options: RunOptions) -> dict[str, Any]:
    """The pipeline's parameters for a cluster run: the options plus where to deploy."""
    return {
        # MNIST is read in the cluster
        **options.arguments(
            settings.n_jobs, settings.mnist_mirrors, settings.download_timeout, mnist_dir=None
        ),
        "namespace": settings.namespace,
        "deployment_name": settings.deployment_name,
        "serving": settings.serving,
        "model_name": settings.model_name,
        "kube_request_timeout": settings.kube_request_timeout,
        "crash_grace": settings.wait_crash_grace,
    }


def plan(settings: Settings, options: RunOptions) -> ClusterPlan:
    """Compile the cluster pipeline and say what a run would use (contacts nothing).

    Raises:
        PipelineError: the pipeline does not compile.
        ImageError: the image record is damaged.
        ClusterError: HK_KFP_COOKIE is not name=value.
        SettingsError: registry credentials are half set, or set without CONTAINER_REGISTRY.
    """
    image = pipeline_image(settings)
    package = settings.output_dir / PIPELINE_FILE
    login = registry_login(
        settings.container_registry, settings.registry_username, settings.registry_password
    )
    pull_secret = PULL_SECRET if login else ""
    compile_pipeline(settings, package, image=image, deploy=True, pull_secret=pull_secret)
    serving = "Seldon Core or KServe, whichever is installed"
    if settings.serving != "auto":
        serving = SERVING_APIS[settings.serving].kind
    return ClusterPlan(
        package=str(package),
        image=image,
        pinned="@sha256:" in image,
        endpoint=describe_kfp_endpoint(settings.kfp_endpoint, settings.gateway_url),
        auth=_describe_auth(Auth.from_settings(settings), settings.kubeflow_username),
        experiment=settings.experiment,
        pipeline=PIPELINE_NAME,
        parameters=run_parameters(settings, options),
        deployment=f"{settings.namespace}/{settings.deployment_name} ({serving})",
        pull_secret=login.describe() if login else "",
    )


def train_on_cluster(
    settings: Settings, options: RunOptions, *, patience: Patience | None = None
) -> ClusterRunSummary:
    """Compile, upload and start the pipeline (image by digest), follow it, report the served model.

    Raises:
        PrerequisiteError: the image is not pinned by digest, kubectl is missing, or
            the profile namespace of a multi-user install is not ready.
        KfpError: the API cannot be reached or refuses us.
        LoginError: logging in with HK_KUBEFLOW_USERNAME/PASSWORD failed.
        RunFailedError: the run failed, was canceled or timed out (naming the step).
    """
    run_plan = plan(settings, options)
    if not run_plan.pinned:
        raise PrerequisiteError(
            f"the pipeline image {run_plan.image} is not pinned by digest, so the cluster "
            "could run another build than yours: run `inv build-push` (it pushes and records "
            "the digest), or set HK_PIPELINE_IMAGE=<repository>@sha256:<digest>"
        )
    auth = Auth.from_settings(settings)
    api, no_api = _kube_api(settings)
    started = time.monotonic()
    with kfp_endpoint(settings) as endpoint:
        if settings.kfp_endpoint or settings.gateway_url:  # not the UI's own port-forward
            auth = gateway_auth(
                _origin(endpoint), auth, settings.kubeflow_username, settings.kubeflow_password
            )
        session = connect(endpoint, auth, namespace=settings.namespace, patience=patience)
        where = session.namespace or KFP_NAMESPACE  # multi-user: a profile namespace
        if session.namespace and api is not None:  # is the profile namespace ready?
            check_profile_namespace(api, session.namespace)
        login = registry_login(
            settings.container_registry, settings.registry_username, settings.registry_password
        )
        if login is not None:  # before the run: its first step's pod pulls the image
            _make_pull_secret(api, no_api, login, [where, settings.namespace])
        pipeline = upload_pipeline(session, Path(run_plan.package), run_plan.pipeline)
        experiment_id = ensure_experiment(session, settings.experiment)
        run_name = f"{run_plan.pipeline} {time.strftime('%Y-%m-%d %H:%M:%S')}"
        run_id = start_run(
            session,
            experiment_id=experiment_id,
            pipeline=pipeline,
            run_name=run_name,
            parameters=run_plan.parameters,
        )
        url = session.run_url(run_id)
        log.info("started run %s: %s", run_id, url)
        outcome = follow_run(
            session,
            run_id,
            timeout=settings.run_timeout,
            steps=step_names(Path(run_plan.package)),
            explain_failure=lambda step: (
                explain_failed_step(api, where, step)
                if api
                else f"See its log in the run's page, or with kubectl logs -n {where}"
            ),
            never_starts=(
                RunPodWatch(
                    api, where, run_id, run_plan.image, settings.run_unschedulable_grace
                ).check
                if api
                else None
            ),
        )
    recorded, serving = _served_model(api, no_api, settings, run_id)
    return ClusterRunSummary(
        run_id=run_id,
        run_url=url,
        state=outcome.state,
        seconds=round(time.monotonic() - started, 2),
        experiment=settings.experiment,
        pipeline_version=pipeline.version_name,
        image=run_plan.image,
        serving=serving,
        namespace=settings.namespace,
        deployment_name=settings.deployment_name,
        accuracy=_number(recorded.get("accuracy"), float),
        model_uri=str(recorded.get("model_uri") or ""),
        preset=str(recorded.get("preset") or options.preset),
        n_estimators=_number(recorded.get("n_estimators"), int),
        train_size=_number(recorded.get("train_size"), int),
        test_size=_number(recorded.get("test_size"), int),
        steps=outcome.steps,
        model=str(recorded.get("model") or options.model),
    )


def undeploy_model(settings: Settings) -> list[str]:
    """Remove the served model (`HK_DEPLOYMENT_NAME` in `HK_NAMESPACE`); what was removed.

    Raises:
        PrerequisiteError: no kubeconfig, or no permission.
    """
    return undeploy(
        api_client(*settings.kube_access),
        settings.namespace,
        settings.deployment_name,
        settings.serving,
    )


def _kube_api(settings: Settings) -> tuple[client.ApiClient | None, str]:
    """The kubeconfig's API client, or None and why not (a run through a gateway needs none)."""
    try:
        return api_client(*settings.kube_access), ""
    except HelloKubeflowError as exc:
        log.info(
            "the profile namespace is not checked, the run's pods not watched and a failed "
            "step's log not read: %s",
            exc,
        )
        return None, str(exc)


def _make_pull_secret(
    api: client.ApiClient | None, no_api: str, login: RegistryLogin, namespaces: list[str]
) -> None:
    """Create or refresh the image pull secret where the steps and the model run.

    Raises:
        PrerequisiteError: no kubeconfig to make it with, or no right to.
        ClusterError: the API server refused it.
    """
    if api is None:
        raise PrerequisiteError(
            f"HK_REGISTRY_USERNAME/PASSWORD are set, so the cluster needs the image pull "
            f"secret {PULL_SECRET} in {' and '.join(dict.fromkeys(namespaces))} to pull "
            f"{login.server}'s image, and making it needs a kubeconfig: {no_api} Or make it "
            f"yourself: kubectl create secret docker-registry {PULL_SECRET} -n <namespace> "
            f"--docker-server={login.server} --docker-username={login.username} "
            "--docker-password=<password>"
        )
    ensure_pull_secret(api, login, namespaces)


def _describe_auth(auth: Auth, username: str | None) -> str:
    """What the run will prove who we are with (never the secret itself)."""
    if auth.token or auth.cookie or not username:
        return auth.kind
    return f"a Dex login as {username} (HK_KUBEFLOW_USERNAME, made at run time)"


def _origin(url: str) -> str:
    """`scheme://host:port` of `url`: where the gateway's login lives."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _served_model(
    api: client.ApiClient | None, no_api: str, settings: Settings, run_id: str
) -> tuple[dict[str, Any], str]:
    """What the deploy step recorded on the served model; without a kubeconfig, a warning."""
    if api is None:
        log.warning("the run succeeded, but the served model could not be read: %s", no_api)
        return {}, settings.serving
    try:
        serving = detect_serving(api, settings.serving)
        resource = wait_until_serving(
            api,
            serving,
            settings.namespace,
            settings.deployment_name,
            timeout=60.0,
            crash_grace=settings.wait_crash_grace,
        )
    except HelloKubeflowError as exc:
        log.warning("the run succeeded, but the served model could not be read: %s", exc)
        return {}, settings.serving
    recorded = recorded_summary(resource)
    if recorded.get("run_id") not in ("", run_id):
        log.warning(
            "%s/%s was last deployed by run %s, not by run %s",
            settings.namespace,
            settings.deployment_name,
            recorded.get("run_id"),
            run_id,
        )
    return recorded, serving


def _number(value: Any, kind: type[Any]) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None
