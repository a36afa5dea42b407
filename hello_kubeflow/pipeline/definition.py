"""The MNIST training pipeline (KFP v2): load data -> train -> evaluate [-> deploy].

Each component body imports the installed package and delegates to it; a step
reads no settings of its own: all it needs arrives as a pipeline parameter.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as
# types (Input[Model], ...), and postponed (string) annotations break it.

from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from hello_kubeflow.images.record import pipeline_image
from hello_kubeflow.settings import load_settings

PIPELINE_NAME = "hello-kubeflow-mnist"
PIPELINE_DESCRIPTION = (
    "Train a model on MNIST (a random forest or a small neural network) and evaluate it "
    "on the 10k test set."
)


def load_data(
    dataset: Output[Dataset],
    mnist_dir: str = "",
    mnist_mirrors: str = "",
    cache_dir: str = "",
    download_timeout: float = 60.0,
    train_limit: int = 0,
    test_limit: int = 0,
) -> None:
    """Read MNIST (a folder, the cache, or the mirrors) into one dataset file."""
    import gc  # kfp runs the body alone: imports inside

    gc.disable()  # a short-lived process: its imports' 100k+ objects are never garbage
    from hello_kubeflow.pipeline.steps import load_data_step

    info = load_data_step(
        dataset.path,
        mnist_dir=mnist_dir,
        mnist_mirrors=mnist_mirrors,
        cache_dir=cache_dir,
        download_timeout=download_timeout,
        train_limit=train_limit,
        test_limit=test_limit,
    )
    dataset.metadata.update(info)
    gc.freeze()  # the step's process ends here: spare it the final collection


def train(
    dataset: Input[Dataset],
    model: Output[Model],
    preset: str = "default",
    n_estimators: int = 0,
    seed: int = 42,
    n_jobs: int = -1,
    model_kind: str = "forest",
) -> None:
    """Train the model (forest or mlp) and save it with its fast form and metadata."""
    import gc  # kfp runs the body alone: imports inside

    gc.disable()  # a short-lived process: its imports' 100k+ objects are never garbage
    from hello_kubeflow.pipeline.steps import train_step

    info = train_step(
        dataset.path,
        model.path,
        preset=preset,
        n_estimators=n_estimators,
        seed=seed,
        n_jobs=n_jobs,
        model_kind=model_kind,
    )
    model.metadata.update(info)
    gc.freeze()  # the step's process ends here: spare it the final collection


def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[Artifact],
) -> None:
    """Score the model on the test set: accuracy, per-class figures, confusion matrix."""
    import gc  # kfp runs the body alone: imports inside

    gc.disable()  # a short-lived process: its imports' 100k+ objects are never garbage
    from hello_kubeflow.pipeline.steps import evaluate_step

    evaluation = evaluate_step(dataset.path, model.path, report.path)
    for name, value in evaluation["metrics"].items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(evaluation["class_names"], evaluation["confusion_matrix"])
    report.metadata.update({key: evaluation[key] for key in ("accuracy", "model", "preset")})
    gc.freeze()  # the step's process ends here: spare it the final collection


def deploy_model(
    model: Input[Model],
    report: Input[Artifact],
    image: str,
    namespace: str,
    deployment_name: str,
    serving: str,
    model_name: str,
    run_id: str,
    kube_request_timeout: float,
    crash_grace: float,
    pull_secret: str = "",
) -> None:
    """Serve the trained model in the cluster: SeldonDeployment or KServe InferenceService."""
    # kfp runs the body alone: imports inside
    from hello_kubeflow.deploy.deploy_step import deploy_step

    deploy_step(
        model_uri=model.uri,
        image=image,
        namespace=namespace,
        name=deployment_name,
        serving=serving,
        model_name=model_name,
        run_id=run_id,
        pull_secret=pull_secret,
        model_metadata=dict(model.metadata),
        report_metadata=dict(report.metadata),
        request_timeout=kube_request_timeout,
        crash_grace=crash_grace,
    )


class PipelineOutputs(NamedTuple):
    """What a run hands back: the model, the evaluation report and the dataset."""

    model: Model
    report: Artifact
    dataset: Dataset


def make_pipeline(
    image: str, deploy: bool = False, pull_secret: str = ""
) -> dsl.graph_component.GraphComponent:
    """Build the pipeline with every step running in `image`.

    Args:
        image: the project image (by digest for reproducible runs).
        deploy: end with the `deploy` step (cluster runs: it needs a cluster).
        pull_secret: the image pull secret every step's pod names ("": none); KFP v2 has
            no pipeline-wide one (kubeflow/pipelines#11498), so it is set on each task.
    """

    def component(func: Callable[..., None]) -> Any:
        return dsl.component(func, base_image=image, install_kfp_package=False)

    load_data_op = component(load_data)
    train_op = component(train)
    evaluate_op = component(evaluate)

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)  # type: ignore[untyped-decorator]
    def mnist_pipeline(
        model_kind: str = "forest",
        preset: str = "default",
        n_estimators: int = 0,
        seed: int = 42,
        n_jobs: int = -1,
        mnist_dir: str = "",
        mnist_mirrors: str = "",
        cache_dir: str = "",
        download_timeout: float = 60.0,
        train_limit: int = 0,
        test_limit: int = 0,
        namespace: str = "kubeflow",
        deployment_name: str = "mnist-classifier",
        serving: str = "auto",
        model_name: str = "mnist-classifier",
        kube_request_timeout: float = 30.0,
        crash_grace: float = 600.0,
    ) -> PipelineOutputs:
        data = load_data_op(
            mnist_dir=mnist_dir,
            mnist_mirrors=mnist_mirrors,
            cache_dir=cache_dir,
            download_timeout=download_timeout,
            train_limit=train_limit,
            test_limit=test_limit,
        )
        data.set_display_name("load MNIST")
        data.set_caching_options(False)
        trained = train_op(
            dataset=data.outputs["dataset"],
            preset=preset,
            n_estimators=n_estimators,
            seed=seed,
            n_jobs=n_jobs,
            model_kind=model_kind,
        )
        trained.set_display_name("train model")
        scored = evaluate_op(dataset=data.outputs["dataset"], model=trained.outputs["model"])
        scored.set_display_name("evaluate on test set")
        tasks = [data, trained, scored]
        if deploy:  # the last step: only here is the model artifact's URI known
            served = component(deploy_model)(
                model=trained.outputs["model"],
                report=scored.outputs["report"],
                image=image,
                namespace=namespace,
                deployment_name=deployment_name,
                serving=serving,
                model_name=model_name,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                kube_request_timeout=kube_request_timeout,
                crash_grace=crash_grace,
                pull_secret=pull_secret,
            )
            served.set_display_name("deploy model")
            served.set_caching_options(False)
            tasks.append(served)
        if pull_secret:
            for task in tasks:
                kubernetes.set_image_pull_secrets(task, [pull_secret])
        return PipelineOutputs(
            model=trained.outputs["model"],
            report=scored.outputs["report"],
            dataset=data.outputs["dataset"],
        )

    return mnist_pipeline


def default_pipeline() -> dsl.graph_component.GraphComponent:
    """The pipeline in the image the settings name: what `kfp dsl compile` compiles."""
    return make_pipeline(pipeline_image(load_settings()))
