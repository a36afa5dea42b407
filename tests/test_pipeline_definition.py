"""The compiled pipeline: a valid KFP v2 pipeline with three typed steps in the project image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import components

from hello_kubeflow import project
from hello_kubeflow.pipeline.local import compile_pipeline
from hello_kubeflow.project import project_root
from hello_kubeflow.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost:5000/hello-kubeflow@sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = compile_pipeline(
        Settings.from_env({}, dotenv=None), tmp_path_factory.mktemp("c") / "job.yaml", IMAGE
    )
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


def test_pipeline_has_a_kebab_case_name(compiled: dict[str, Any]) -> None:
    assert compiled["pipelineInfo"]["name"] == "hello-kubeflow-mnist"


def test_pipeline_runs_load_train_evaluate_in_order(compiled: dict[str, Any]) -> None:
    tasks = compiled["root"]["dag"]["tasks"]
    assert set(tasks) == {"load-data", "train", "evaluate"}
    assert tasks["train"]["dependentTasks"] == ["load-data"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["load-data", "train"]


def test_the_model_kind_is_a_pipeline_parameter_passed_to_training(
    compiled: dict[str, Any],
) -> None:
    """The same pipeline trains either model, locally and on a cluster."""
    parameters = compiled["root"]["inputDefinitions"]["parameters"]
    assert parameters["model_kind"]["parameterType"] == "STRING"
    assert parameters["model_kind"]["defaultValue"] == "forest"
    train = compiled["root"]["dag"]["tasks"]["train"]
    given = train["inputs"]["parameters"]["model_kind"]
    assert given["componentInputParameter"] == "model_kind"
    assert train["taskInfo"]["name"] == "train model"  # not "random forest": either model


def test_steps_pass_typed_artifacts(compiled: dict[str, Any]) -> None:
    comps = compiled["components"]
    out = comps["comp-load-data"]["outputDefinitions"]["artifacts"]["dataset"]
    assert out["artifactType"]["schemaTitle"] == "system.Dataset"
    model = comps["comp-train"]["outputDefinitions"]["artifacts"]["model"]
    assert model["artifactType"]["schemaTitle"] == "system.Model"
    metrics = comps["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert metrics["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert metrics["confusion"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"


def test_every_step_runs_in_the_given_image_and_installs_nothing(
    compiled: dict[str, Any],
) -> None:
    executors = compiled["deploymentSpec"]["executors"]
    assert len(executors) == 3
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == IMAGE
        assert "pip install" not in " ".join(container["command"] + container.get("args", []))


def test_every_step_names_its_command_instead_of_the_image_default(
    compiled: dict[str, Any],
) -> None:
    """The image's default is the notebook server: a step must say what it runs."""
    for name, executor in compiled["deploymentSpec"]["executors"].items():
        command = executor["container"]["command"]
        assert command[0] == "sh", name
        script = " ".join(command + executor["container"]["args"])
        assert "python3 -m kfp.dsl.executor_main" in script, name


def test_each_step_spares_its_short_lived_process_the_garbage_collections(
    compiled: dict[str, Any],
) -> None:
    """None while importing scikit-learn and the rest, none at exit: about a second a local run."""
    executors = compiled["deploymentSpec"]["executors"]
    for step in ("load-data", "train", "evaluate"):
        script = " ".join(executors[f"exec-{step}"]["container"]["command"])
        assert "gc.disable()" in script, step
        assert "gc.freeze()" in script, step


def test_compiled_yaml_loads_back_as_a_pipeline(tmp_path: Path) -> None:
    path = compile_pipeline(Settings.from_env({}, dotenv=None), tmp_path / "job.yaml", IMAGE)
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "hello-kubeflow-mnist"
    assert set(loaded.component_spec.inputs or {}) >= {"preset", "n_estimators", "seed"}


def test_kfp_cli_compiles_the_pipeline_file(tmp_path: Path) -> None:
    """`kfp dsl compile --py pipeline/train_pipeline.py` works as in the original walkthrough."""
    kfp_cli = Path(sys.executable).parent / "kfp"
    output = tmp_path / "job.yaml"
    result = subprocess.run(
        [str(kfp_cli), "dsl", "compile", "--py", "pipeline/train_pipeline.py", "--output", output],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(output.read_text())["pipelineInfo"]["name"] == "hello-kubeflow-mnist"


def test_inv_compile_writes_job_yaml(tmp_path: Path) -> None:
    inv = Path(sys.executable).parent / "inv"
    result = subprocess.run(
        [str(inv), "compile", "--output", str(tmp_path / "job.yaml"), "--image", IMAGE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "job.yaml" in result.stdout
    executors = yaml.safe_load((tmp_path / "job.yaml").read_text())["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}


def test_importing_the_pipeline_file_does_no_work(tmp_path: Path) -> None:
    """No settings read at import: a malformed variable only matters once it is compiled."""
    code = (
        "import sys; sys.path.insert(0, 'pipeline'); import train_pipeline; "
        "print(train_pipeline.PIPELINE_NAME); train_pipeline.train_pipeline"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"HK_MODE": "nowhere", "HOME": str(tmp_path)},
    )
    assert result.stdout.splitlines() == ["hello-kubeflow-mnist"]  # the import itself succeeded
    assert "HK_MODE='nowhere'" in result.stderr  # building the pipeline reads settings


def test_the_pipeline_definition_is_in_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed package compiles without a checkout's pipeline/ folder."""
    from hello_kubeflow.pipeline import definition as pipeline_definition

    assert Path(pipeline_definition.__file__).is_relative_to(REPO / "hello_kubeflow")
    # outside any checkout, as after `pip install`: no project root, no pipeline/ folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(project, "_chosen", [])  # as if no tasks.py had named a root
    project_root.cache_clear()
    try:
        settings = load_settings()
        path = compile_pipeline(settings, tmp_path / "job.yaml", IMAGE)
    finally:
        project_root.cache_clear()
    assert settings.project_root is None
    assert yaml.safe_load(path.read_text())["pipelineInfo"]["name"] == "hello-kubeflow-mnist"
