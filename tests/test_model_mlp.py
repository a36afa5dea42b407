"""Tests of the neural network (hello_kubeflow.model.mlp): training, fast path, serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from model_support import assert_fast_path_parity
from serving_support import call

from hello_kubeflow.data.mnist import MnistData, load_mnist, scale_pixels
from hello_kubeflow.errors import ModelError, SettingsError
from hello_kubeflow.model.mlp import MLP_PRESETS, MlpPreset
from hello_kubeflow.model.train import (
    PRESETS_BY_MODEL,
    TrainResult,
    build_metadata,
    load_model,
    save_model,
    train_model,
)
from hello_kubeflow.query.answers import check_answer, seldon_payload, v2_payload
from hello_kubeflow.serving.seldon_model import MnistClassifier
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import MODEL_PRESETS, Settings

SMALL = MlpPreset(
    "small", hidden=(32,), epochs=15, batch_size=128, alpha=1e-3, train_size=None, description=""
)


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path) -> MnistData:
    """The small MNIST fixture (4,000 train / 1,000 test), read once."""
    return load_mnist(Settings(mnist_dir=mnist_dir))


@pytest.fixture(scope="module")
def network(mnist: MnistData) -> TrainResult:
    """A 32-unit network, 15 epochs on 2,000 images (about a second)."""
    return train_model(
        scale_pixels(mnist.x_train[:2000]), mnist.y_train[:2000], preset=SMALL, seed=1
    )


@pytest.fixture
def artifact(network: TrainResult, tmp_path: Path) -> Path:
    """The network saved as a model directory."""
    return save_model(tmp_path / "mlp", network, metadata=build_metadata(network, accuracy=0.9))


def test_every_kind_has_the_presets_the_settings_accept() -> None:
    found = {kind: sorted(presets) for kind, presets in PRESETS_BY_MODEL.items()}
    assert found == {kind: sorted(names) for kind, names in MODEL_PRESETS.items()}


def test_network_learns_the_digits(network: TrainResult, mnist: MnistData) -> None:
    predicted = network.model.predict(scale_pixels(mnist.x_test))
    assert (predicted == mnist.y_test).mean() > 0.85
    assert network.kind == "mlp" and network.n_estimators == 0


def test_model_directory_records_the_kind_and_answers_through_onnx(artifact: Path) -> None:
    metadata = json.loads((artifact / "metadata.json").read_text())
    assert metadata["model"] == "mlp"
    assert metadata["preset"] == "small"
    assert metadata["parameters"]["hidden_layer_sizes"] == [32]
    assert metadata["n_estimators"] is None
    loaded = load_model(artifact)
    assert (loaded.kind, loaded.fast, loaded.runtime) == ("mlp", True, "onnxruntime")


def test_same_seed_trains_the_same_network(network: TrainResult, mnist: MnistData) -> None:
    again = train_model(
        scale_pixels(mnist.x_train[:2000]), mnist.y_train[:2000], preset=SMALL, seed=1
    )
    for mine, theirs in zip(network.model.coefs_, again.model.coefs_, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_trees_for_the_network_are_refused(mnist: MnistData) -> None:
    with pytest.raises(SettingsError, match="trees are for the forest"):
        train_model(
            scale_pixels(mnist.x_train[:500]), mnist.y_train[:500], model="mlp", n_estimators=5
        )


def test_a_forest_preset_for_the_network_lists_its_presets(mnist: MnistData) -> None:
    with pytest.raises(SettingsError, match=r"preset 'book' \(mlp\): expected one of default"):
        train_model(
            scale_pixels(mnist.x_train[:500]), mnist.y_train[:500], model="mlp", preset="book"
        )


def test_an_unknown_kind_of_model_is_refused(mnist: MnistData) -> None:
    with pytest.raises(SettingsError, match="model 'svm': expected one of forest, mlp"):
        train_model(scale_pixels(mnist.x_train[:500]), mnist.y_train[:500], model="svm")


def test_metadata_naming_an_unknown_kind_is_refused_at_load(artifact: Path) -> None:
    record = json.loads((artifact / "metadata.json").read_text())
    record["model"] = "svm"
    (artifact / "metadata.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match=r"says the model is 'svm'.*retrain"):
        load_model(artifact)


def test_metadata_naming_the_other_kind_is_caught_when_the_model_is_read(artifact: Path) -> None:
    record = json.loads((artifact / "metadata.json").read_text())
    record["model"] = "forest"
    (artifact / "metadata.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match=r"holds a mlp but metadata\.json says forest"):
        load_model(artifact).sklearn_model  # noqa: B018 - reading the model is the check


def test_saving_with_metadata_of_the_other_kind_is_refused(
    network: TrainResult, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="says 'forest' for a fitted mlp"):
        save_model(tmp_path, network.model, metadata={"model": "forest"})


def test_saved_network_leaves_out_what_only_fitting_uses(artifact: Path) -> None:
    """Adam's moments triple the file; numpy's pickled generator breaks older numpy."""
    network = load_model(artifact).sklearn_model
    assert not hasattr(network, "_optimizer") and not hasattr(network, "_random_state")


# ---- the fast path against scikit-learn


def test_fast_path_matches_scikit_learn_on_all_10k_test_images(
    full_mnist_dir: Path, tmp_path: Path
) -> None:
    full = load_mnist(Settings(mnist_dir=full_mnist_dir))
    x, y = scale_pixels(full.x_train[:5000]), full.y_train[:5000]
    preset = MlpPreset("p", (64,), 5, 256, 1e-3, None, "")
    loaded = load_model(save_model(tmp_path, train_model(x, y, preset=preset, seed=5)))
    x_test = scale_pixels(full.x_test)
    assert len(x_test) == 10_000 and loaded.fast
    assert_fast_path_parity(loaded, x_test)


@pytest.mark.slow
def test_default_preset_matches_scikit_learn_on_all_10k_test_images(
    full_mnist_dir: Path, tmp_path: Path
) -> None:
    """The network `inv train --model mlp` makes (~40 CPU seconds to train)."""
    full = load_mnist(Settings(mnist_dir=full_mnist_dir))
    result = train_model(
        scale_pixels(full.x_train), full.y_train, preset=MLP_PRESETS["default"], seed=42
    )
    loaded = load_model(save_model(tmp_path, result))
    x_test = scale_pixels(full.x_test)
    assert_fast_path_parity(loaded, x_test)
    assert (loaded.predict(x_test) == full.y_test).mean() >= 0.98


# ---- serving


def test_server_answers_every_protocol_for_the_network(artifact: Path, mnist: MnistData) -> None:
    pixels = scale_pixels(mnist.x_test[:3])
    expected = load_model(artifact).predict(pixels).tolist()
    settings = Settings(serve_port=0, model_name="mnist")
    with running_server(settings, artifact) as server:
        status, seldon = call(f"{server.url}/api/v1.0/predictions", seldon_payload(pixels))
        assert status == 200
        assert [p.digit for p in check_answer(seldon, "seldon", rows=3)] == expected
        status, v2 = call(f"{server.url}/v2/models/mnist/infer", v2_payload(pixels))
        assert status == 200
        assert [p.digit for p in check_answer(v2, "v2", rows=3)] == expected
        status, metadata = call(f"{server.url}/v2/models/mnist")
        assert status == 200 and metadata["platform"] == "onnxruntime"
        status, seldon_metadata = call(f"{server.url}/api/v1.0/metadata")
        assert status == 200 and seldon_metadata["custom"]["model"] == "mlp"


def test_seldon_model_class_serves_the_network(artifact: Path, mnist: MnistData) -> None:
    pixels = scale_pixels(mnist.x_test[:4])
    classifier = MnistClassifier(model_dir=str(artifact), model_name="mnist")
    answer = classifier.predict(pixels.tolist())
    np.testing.assert_allclose(answer, load_model(artifact).predict_proba(pixels), atol=1e-7)
    assert classifier.init_metadata()["custom"]["model"] == "mlp"
    assert classifier.health_status() == "healthy"
