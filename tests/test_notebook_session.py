"""Where the chapter's notebook runs: inside a Kubeflow Notebook pod, or anywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from hello_kubeflow.errors import PipelineError
from hello_kubeflow.notebook.session import checkout_root, pod_settings
from hello_kubeflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_outside_a_notebook_pod_there_are_no_cluster_settings(tmp_path: Path) -> None:
    assert pod_settings(Settings(), token_file=tmp_path / "token") is None


def test_inside_a_notebook_pod_the_pods_token_and_namespace_are_used(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("eyJ-projected-token\n")
    (tmp_path / "namespace").write_text("kubeflow-user-example-com")

    settings = pod_settings(
        Settings(), token_file=tmp_path / "token", namespace_file=tmp_path / "namespace"
    )

    assert settings is not None
    assert settings.mode == "cluster"
    assert settings.namespace == "kubeflow-user-example-com"
    assert settings.kfp_token == "eyJ-projected-token"
    assert settings.kfp_endpoint == "http://ml-pipeline-ui.kubeflow.svc.cluster.local"
    assert "eyJ" not in repr(settings)


def test_an_endpoint_set_explicitly_wins_over_the_in_cluster_one(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")

    settings = pod_settings(
        Settings(kfp_endpoint="http://kfp.internal:8888"),
        token_file=tmp_path / "token",
        namespace_file=tmp_path / "absent",
    )

    assert settings is not None and settings.kfp_endpoint == "http://kfp.internal:8888"


def test_the_checkout_is_found_from_the_notebooks_folder() -> None:
    assert checkout_root(REPO / "notebooks") == REPO


def test_outside_a_checkout_the_error_says_to_open_the_notebook_from_one(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="git clone"):
        checkout_root(tmp_path)
