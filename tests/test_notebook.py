"""`notebooks/hello-kubeflow.ipynb` runs top to bottom on a laptop (kfp.local), as CI runs it.

Executed with nbclient in the project's kernel (`hello-kubeflow`, registered for
the test in a scratch Jupyter path, pointing at this environment's Python), on
a small slice of MNIST (HK_TEST_MNIST_DIR or ../shared/data/mnist), with its
parameters cell replaced as papermill would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "hello-kubeflow.ipynb"
CELL_TIMEOUT = 300
QUICK = "PRESET = 'default'\nTREES = 3\nTRAIN_LIMIT = 1_000\nTEST_LIMIT = 200\nDIGIT = 0\n"


@pytest.fixture
def project_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The `hello-kubeflow` kernel, as the image registers it, for this environment's Python."""
    kernels = tmp_path / "jupyter" / "kernels" / "hello-kubeflow"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (hello-kubeflow)",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "hello-kubeflow"


def test_the_notebook_names_the_project_kernel() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    assert notebook.metadata.kernelspec.name == "hello-kubeflow"
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_on_a_laptop(
    project_kernel: str, mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("HK_OUTPUT_DIR", str(outputs))
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("HK_N_JOBS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    parameters[0].source = QUICK

    NotebookClient(
        notebook,
        kernel_name=project_kernel,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    ).execute()

    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    )
    assert "on this machine: kfp.local" in printed
    assert "compiled:" in printed
    assert (outputs / "notebook-pipeline.yaml").is_file()
    assert (outputs / "notebook-answer.png").is_file()
    last = notebook.cells[-1].outputs
    assert last and "image/png" in last[0]["data"]
