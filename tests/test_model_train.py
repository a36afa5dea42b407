"""Tests of hello_kubeflow.model.train: presets, training, evaluation, artifact, fast path."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from model_support import assert_fast_path_parity
from PIL import Image

from hello_kubeflow.data.mnist import PIXEL_SCALING, MnistData, load_mnist, scale_pixels
from hello_kubeflow.errors import DataError, ModelError, SettingsError
from hello_kubeflow.model.train import (
    CLASS_NAMES,
    PRESETS,
    Evaluation,
    Preset,
    TrainResult,
    build_metadata,
    evaluate,
    load_model,
    save_confusion_png,
    save_model,
    train_model,
)
from hello_kubeflow.settings import PRESET_NAMES, Settings

REPO = Path(__file__).resolve().parents[1]
TINY = Preset("tiny", n_estimators=4, train_size=None, bootstrap=False, description="tests")


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path) -> MnistData:
    """Real MNIST digits (the small fixture: 4,000 train / 1,000 test), read once."""
    return load_mnist(Settings(mnist_dir=mnist_dir))


@pytest.fixture(scope="module")
def full_mnist(full_mnist_dir: Path) -> MnistData:
    """Full MNIST from the shared copy, for the full-set parity checks."""
    return load_mnist(Settings(mnist_dir=full_mnist_dir))


@pytest.fixture(scope="module")
def train_slice(mnist: MnistData) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The first 1,000 training images, scaled to [0, 1]."""
    return scale_pixels(mnist.x_train[:1000]), mnist.y_train[:1000]


@pytest.fixture(scope="module")
def test_slice(mnist: MnistData) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The first 500 test images, scaled to [0, 1]."""
    return scale_pixels(mnist.x_test[:500]), mnist.y_test[:500]


@pytest.fixture(scope="module")
def small_result(train_slice: tuple[Any, Any]) -> TrainResult:
    """A 4-tree forest on 1,000 images."""
    return train_model(*train_slice, preset=TINY, seed=3, n_jobs=1)


@pytest.fixture
def artifact(small_result: TrainResult, tmp_path: Path) -> Path:
    """A saved model directory of the small forest."""
    metadata = build_metadata(small_result, accuracy=0.5, data_source="test slice")
    return save_model(tmp_path / "model", small_result, metadata=metadata)


# ---- presets and training


def test_presets_are_the_choices_settings_accept() -> None:
    assert set(PRESETS) == set(PRESET_NAMES)


def test_book_preset_is_the_original_recipe() -> None:
    book = PRESETS["book"]
    assert (book.n_estimators, book.train_size, book.bootstrap) == (30, 35_000, True)


def test_default_preset_uses_every_training_image_and_more_trees() -> None:
    default = PRESETS["default"]
    assert default.train_size is None
    assert default.n_estimators > PRESETS["book"].n_estimators


def test_preset_draws_its_sample_size_from_the_training_set(
    train_slice: tuple[Any, Any],
) -> None:
    sampled = Preset("s", n_estimators=2, train_size=300, bootstrap=True, description="")
    result = train_model(*train_slice, preset=sampled, seed=1, n_jobs=1)
    assert result.train_size == 300


def test_preset_by_name_and_tree_count_override(train_slice: tuple[Any, Any]) -> None:
    result = train_model(*train_slice, preset="book", n_estimators=3, seed=1, n_jobs=1)
    assert len(result.model.estimators_) == 3
    assert result.parameters["n_estimators"] == 3
    assert result.parameters["bootstrap"] is True
    assert result.preset.name == "book"


def test_same_seed_trains_the_same_model(
    train_slice: tuple[Any, Any], test_slice: tuple[Any, Any]
) -> None:
    first = train_model(*train_slice, preset=TINY, seed=11, n_jobs=1)
    again = train_model(*train_slice, preset=TINY, seed=11, n_jobs=-1)
    x_test = test_slice[0]
    np.testing.assert_array_equal(
        first.model.predict_proba(x_test), again.model.predict_proba(x_test)
    )


def test_uint8_pixels_train_the_same_model_as_scaled_ones(
    mnist: MnistData, test_slice: tuple[Any, Any]
) -> None:
    """The pipeline passes MNIST's uint8 pixels: scaled after sampling, the model is the same."""
    sampled = Preset("s", n_estimators=3, train_size=400, bootstrap=True, description="")
    raw, labels = mnist.x_train[:1000], mnist.y_train[:1000]
    from_raw = train_model(raw, labels, preset=sampled, seed=5, n_jobs=1)
    from_scaled = train_model(scale_pixels(raw), labels, preset=sampled, seed=5, n_jobs=1)
    assert from_raw.train_size == from_scaled.train_size == 400
    x_test = test_slice[0]
    np.testing.assert_array_equal(
        from_raw.model.predict_proba(x_test), from_scaled.model.predict_proba(x_test)
    )
    for raw_tree, scaled_tree in zip(
        from_raw.model.estimators_, from_scaled.model.estimators_, strict=True
    ):
        np.testing.assert_array_equal(raw_tree.tree_.threshold, scaled_tree.tree_.threshold)


def test_another_seed_trains_another_model(
    train_slice: tuple[Any, Any], test_slice: tuple[Any, Any]
) -> None:
    first = train_model(*train_slice, preset=TINY, seed=11, n_jobs=1)
    other = train_model(*train_slice, preset=TINY, seed=12, n_jobs=1)
    x_test = test_slice[0]
    assert not np.array_equal(first.model.predict_proba(x_test), other.model.predict_proba(x_test))


def test_trained_model_predicts_in_one_process(small_result: TrainResult) -> None:
    """n_jobs is for fitting; the saved forest must not spawn workers per request."""
    assert small_result.model.n_jobs is None


def test_unknown_preset_is_a_settings_error_listing_the_choices(
    train_slice: tuple[Any, Any],
) -> None:
    with pytest.raises(SettingsError, match="book, default"):
        train_model(*train_slice, preset="huge")


def test_zero_trees_is_a_settings_error(train_slice: tuple[Any, Any]) -> None:
    with pytest.raises(SettingsError, match="at least 1 tree"):
        train_model(*train_slice, preset=TINY, n_estimators=0)


def test_unscaled_pixels_are_refused_with_the_fix(mnist: MnistData) -> None:
    raw = mnist.x_train[:200].astype(np.float32)
    with pytest.raises(DataError, match="scale_pixels"):
        train_model(raw, mnist.y_train[:200], preset=TINY)


def test_labels_missing_a_digit_are_refused(train_slice: tuple[Any, Any]) -> None:
    x, y = train_slice
    keep = y != 7
    with pytest.raises(DataError, match="every digit 0-9"):
        train_model(x[keep], y[keep], preset=TINY)


# ---- evaluation


class _FixedAnswers:
    """A model that answers given digits, one-hot."""

    def __init__(self, digits: list[int]) -> None:
        self.digits = digits

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        return np.eye(10)[self.digits[: len(x)]]


def test_evaluation_figures_on_a_known_case() -> None:
    truth = [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    answer = [0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8]
    evaluation = evaluate(_FixedAnswers(answer), np.zeros((12, 784), np.float32), truth)
    assert evaluation.accuracy == pytest.approx(10 / 12)
    assert evaluation.recall[0] == 0.5 and evaluation.precision[0] == 1.0
    assert evaluation.precision[1] == pytest.approx(2 / 3) and evaluation.recall[1] == 1.0
    assert evaluation.precision[8] == 0.5 and evaluation.recall[9] == 0.0
    assert evaluation.precision[9] == 0.0  # never predicted: 0, not a division error
    assert evaluation.confusion_matrix[0][1] == 1
    assert evaluation.confusion_matrix[9][8] == 1
    assert sum(map(sum, evaluation.confusion_matrix)) == 12
    assert evaluation.support[1] == 2 and evaluation.test_size == 12


def test_evaluation_as_dict_survives_json(small_result: TrainResult, test_slice: Any) -> None:
    evaluation = evaluate(small_result.model, *test_slice)
    loaded = json.loads(json.dumps(evaluation.as_dict()))
    assert loaded["accuracy"] == evaluation.accuracy
    assert loaded["class_names"] == list(CLASS_NAMES)
    assert len(loaded["confusion_matrix"]) == 10
    assert all(len(row) == 10 for row in loaded["confusion_matrix"])
    assert len(loaded["precision"]) == len(loaded["recall"]) == 10


def test_labels_that_are_not_digits_cannot_be_scored() -> None:
    with pytest.raises(DataError, match="digits 0-9"):
        evaluate(_FixedAnswers([1, 2]), np.zeros((2, 784), np.float32), [1, 12])


def test_confusion_png_is_a_picture_of_the_matrix(tmp_path: Path) -> None:
    def cell(row: int, column: int) -> int:
        return 90 if row == column else 5 if column == (row + 1) % 10 else 0

    evaluation = Evaluation(
        accuracy=0.9476,
        precision=(0.9,) * 10,
        recall=(0.9,) * 10,
        support=(95,) * 10,
        confusion_matrix=tuple(tuple(cell(r, c) for c in range(10)) for r in range(10)),
    )
    path = save_confusion_png(evaluation, tmp_path / "report" / "confusion.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    assert width >= 600 and height >= 600
    assert colours is not None and len(colours) > 50  # cells, text and axes, not a blank page
    # Ten right-answer cells in green, ten cells of mistakes in red, each thousands of pixels.
    red, green = pixels[..., 0], pixels[..., 1]
    assert ((green - red) > 60).sum() > 10 * 2000
    assert ((red - green) > 60).sum() > 10 * 2000


# ---- the artifact: save, load, metadata


def test_saved_model_loads_and_answers_the_same(
    artifact: Path, small_result: TrainResult, test_slice: Any
) -> None:
    loaded = load_model(artifact)
    x_test = test_slice[0]
    expected = small_result.model.predict_proba(x_test)
    assert loaded.fast
    assert loaded.class_names == [f"class:{d}" for d in range(10)]
    np.testing.assert_allclose(loaded.predict_proba(x_test), expected, atol=1e-5)
    np.testing.assert_array_equal(loaded.sklearn_predict_proba(x_test), expected)
    assert loaded.predict_proba(x_test[:1]).shape == (1, 10)


def test_saved_files_are_the_model_its_fast_form_and_metadata(artifact: Path) -> None:
    assert sorted(p.name for p in artifact.iterdir()) == [
        "metadata.json",
        "model.joblib",
        "model.onnx",
    ]


def test_metadata_records_how_the_model_was_made(artifact: Path) -> None:
    metadata = json.loads((artifact / "metadata.json").read_text())
    assert metadata["preset"] == "tiny"
    assert metadata["parameters"]["n_estimators"] == 4
    assert metadata["parameters"]["random_state"] == 3
    assert metadata["seed"] == 3
    assert metadata["train_size"] == 1000
    assert metadata["accuracy"] == 0.5
    assert metadata["data_source"] == "test slice"
    assert metadata["pixel_scaling"] == json.loads(json.dumps(PIXEL_SCALING))
    assert metadata["class_names"] == list(CLASS_NAMES)
    assert {"python", "scikit-learn", "numpy", "onnx", "onnxruntime"} <= set(metadata["versions"])
    assert datetime.fromisoformat(metadata["created"]).tzinfo is not None
    assert set(metadata["files"]) == {"model.joblib", "model.onnx"}


def test_save_without_metadata_builds_it(small_result: TrainResult, tmp_path: Path) -> None:
    loaded = load_model(save_model(tmp_path / "m", small_result))
    assert loaded.metadata["train_size"] == 1000
    assert loaded.metadata["accuracy"] is None


def test_a_file_inside_the_model_directory_is_accepted(artifact: Path) -> None:
    assert load_model(artifact / "model.onnx").directory == artifact


def test_without_the_fast_form_answers_come_from_scikit_learn(
    artifact: Path, small_result: TrainResult, test_slice: Any
) -> None:
    (artifact / "model.onnx").unlink()
    _edit_metadata(artifact, lambda m: m["files"].pop("model.onnx"))
    loaded = load_model(artifact)
    assert not loaded.fast
    assert loaded.runtime == "sklearn"
    x_test = test_slice[0]
    np.testing.assert_allclose(
        loaded.predict_proba(x_test), small_result.model.predict_proba(x_test), atol=1e-6
    )


def test_pixels_of_the_wrong_shape_are_refused(artifact: Path) -> None:
    with pytest.raises(ValueError, match=r"\(n, 784\)"):
        load_model(artifact).predict_proba(np.zeros((1, 28, 28), np.float32))


# ---- bad artifacts: each one a ModelError naming the path and the fix


def _edit_metadata(directory: Path, change: Any) -> None:
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


def _rerecord(directory: Path, name: str) -> None:
    """Make metadata.json vouch for the file as it is now (to reach the loader)."""
    from hello_kubeflow.data.files import file_record

    record = file_record(directory / name)
    _edit_metadata(directory, lambda m: m["files"].update({name: record}))


def _assert_model_error(path: Path, mentions: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_model(path).sklearn_model  # noqa: B018 - reading the forest is the check
    message = str(caught.value)
    assert mentions in message
    assert "inv train" in message and "--model" in message


def test_missing_directory(tmp_path: Path) -> None:
    _assert_model_error(tmp_path / "nowhere", str(tmp_path / "nowhere"))


def test_directory_without_metadata(tmp_path: Path) -> None:
    _assert_model_error(tmp_path, "metadata.json is missing")


def test_metadata_that_is_not_json(artifact: Path) -> None:
    (artifact / "metadata.json").write_bytes(b"\x00\xffnot json")
    _assert_model_error(artifact, "metadata.json")


def test_json_that_is_not_our_metadata(artifact: Path) -> None:
    (artifact / "metadata.json").write_text('{"name": "some other model"}')
    _assert_model_error(artifact, "not the metadata of a hello-kubeflow model")


def test_missing_model_file(artifact: Path) -> None:
    (artifact / "model.joblib").unlink()
    _assert_model_error(artifact, str(artifact / "model.joblib"))


def test_random_bytes_for_the_model_file(artifact: Path) -> None:
    (artifact / "model.joblib").write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_model_error(artifact, "does not match the SHA-256")


def test_random_bytes_for_the_onnx_file(artifact: Path) -> None:
    (artifact / "model.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_model_error(artifact, str(artifact / "model.onnx"))


def test_random_bytes_that_match_the_checksum_still_fail_to_load(artifact: Path) -> None:
    (artifact / "model.joblib").write_bytes(np.random.default_rng(1).bytes(4096))
    _rerecord(artifact, "model.joblib")
    _assert_model_error(artifact, "not a model joblib can load")


def test_onnx_garbage_that_matches_the_checksum_still_fails_to_load(artifact: Path) -> None:
    (artifact / "model.onnx").write_bytes(np.random.default_rng(2).bytes(4096))
    _rerecord(artifact, "model.onnx")
    _assert_model_error(artifact, "not a model ONNX Runtime can load")


def test_a_forest_for_other_data_is_not_an_mnist_model(artifact: Path) -> None:
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    other = RandomForestClassifier(n_estimators=2).fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    joblib.dump(other, artifact / "model.joblib")
    _rerecord(artifact, "model.joblib")
    _assert_model_error(artifact, "not an MNIST classifier")


# ---- the fast path: same answers as scikit-learn


def test_fast_form_equals_skl2onnx_conversion(
    small_result: TrainResult, test_slice: Any, tmp_path: Path
) -> None:
    """Our vectorised ONNX builder gives what skl2onnx's own converter gives."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from hello_kubeflow.model.fastpath import forest_to_onnx

    forest = small_result.model
    reference = to_onnx(
        forest,
        initial_types=[("input", FloatTensorType([None, 784]))],
        options={id(forest): {"zipmap": False}},
    )
    x_test = test_slice[0]
    ours = ort.InferenceSession(forest_to_onnx(forest), providers=["CPUExecutionProvider"])
    theirs = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(
        ours.run(["probabilities"], {"input": x_test})[0],
        theirs.run(["probabilities"], {"input": x_test})[0],
    )


def test_fast_form_is_the_node_the_onnx_helper_builds(small_result: TrainResult) -> None:
    import onnx
    from onnx import helper

    from hello_kubeflow.model.fastpath import forest_to_onnx

    model = onnx.load_from_string(forest_to_onnx(small_result.model))
    onnx.checker.check_model(model)
    (node,) = model.graph.node
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    rebuilt = helper.make_node(node.op_type, node.input, node.output, domain=node.domain, **values)
    assert node.SerializeToString() == rebuilt.SerializeToString()  # same types, same order
    assert values["nodes_modes"][:1] == [b"BRANCH_LEQ"]


def test_fast_form_is_byte_for_byte_the_model_the_onnx_package_writes(
    small_result: TrainResult,
) -> None:
    """The protobuf written without the onnx package is what onnx itself serialises."""
    import onnx
    from onnx import TensorProto, helper

    from hello_kubeflow.model.fastpath import forest_to_onnx

    ours = forest_to_onnx(small_result.model)
    parsed = onnx.load_from_string(ours)
    (node,) = parsed.graph.node
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    graph = helper.make_graph(
        [helper.make_node(node.op_type, node.input, node.output, domain=node.domain, **values)],
        "mnist-random-forest",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 784])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10]),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="hello-kubeflow")
    model.ir_version = 8
    assert ours == model.SerializeToString() == parsed.SerializeToString()
    assert len(values["nodes_treeids"]) == sum(
        t.tree_.node_count for t in small_result.model.estimators_
    )


def test_saving_a_forest_does_not_import_the_onnx_package(tmp_path: Path) -> None:
    """The train step writes the fast form without `onnx` (its import alone takes ~0.6 s)."""
    script = (
        "import sys\n"
        "import numpy as np\n"
        "from hello_kubeflow.model.train import Preset, load_model, save_model, train_model\n"
        "rng = np.random.default_rng(0)\n"
        "x, y = rng.integers(0, 256, (60, 784), dtype=np.uint8), np.arange(60) % 10\n"
        "preset = Preset('tiny', 2, None, bootstrap=False, description='')\n"
        "save_model(sys.argv[1], train_model(x, y, preset=preset, n_jobs=1))\n"
        "print('onnx' in sys.modules, load_model(sys.argv[1]).fast)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_serving_with_other_library_versions_than_training_warns(
    small_result: TrainResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = save_model(tmp_path / "model", small_result)
    metadata_file = directory / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    served = metadata["versions"]["scikit-learn"]
    metadata["versions"]["scikit-learn"] = "0.24.2"
    metadata_file.write_text(json.dumps(metadata))

    with caplog.at_level(logging.WARNING, logger="hello_kubeflow.model.artifact"):
        load_model(directory)

    [warning] = caplog.messages
    assert "trained with other library versions than it is served with" in warning
    assert f"scikit-learn 0.24.2 -> {served}" in warning
    assert "numpy" not in warning  # only what differs


def test_serving_with_the_training_versions_says_nothing(
    small_result: TrainResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = save_model(tmp_path / "model", small_result)
    with caplog.at_level(logging.WARNING, logger="hello_kubeflow.model.artifact"):
        load_model(directory)
    assert caplog.messages == []


def _assert_parity(loaded: Any, mnist: MnistData) -> None:
    """Every test image: valid probabilities, within 1e-5 of scikit-learn, same digits."""
    x_test = scale_pixels(mnist.x_test)
    assert len(x_test) == 10_000 and loaded.fast
    assert_fast_path_parity(loaded, x_test)


def test_fast_path_matches_scikit_learn_on_all_10k_test_images(
    full_mnist: MnistData, tmp_path: Path
) -> None:
    """Fast-path parity with scikit-learn for a forest trained on a 5,000-image slice."""
    x, y = scale_pixels(full_mnist.x_train[:5000]), full_mnist.y_train[:5000]
    result = train_model(x, y, preset=TINY, n_estimators=12, seed=5)
    _assert_parity(load_model(save_model(tmp_path, result)), full_mnist)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_answers_valid_probabilities_matching_scikit_learn(
    preset: str, preset_model: Callable[[str], Path], full_mnist: MnistData
) -> None:
    """Parity holds where the book forest's 30 float32 leaf weights summed to 1.0000004."""
    _assert_parity(load_model(preset_model(preset)), full_mnist)


def test_summed_float32_weights_become_probabilities() -> None:
    """Thirty float32 weights of 1/30 sum to more than 1; the fast path's rows do not."""
    from hello_kubeflow.model.fastpath import as_probabilities

    summed = np.zeros((2, 10), np.float32)
    for _ in range(30):
        summed[0, 3] += np.float32(1 / 30)
    summed[1, :] = np.float32(0.1)
    assert summed[0, 3] > 1.0
    rows = as_probabilities(summed.copy())
    assert rows.dtype == np.float32
    assert rows[0, 3] == 1.0 and rows.max() <= 1.0 and rows.min() >= 0.0
    np.testing.assert_allclose(rows[1], 0.1, atol=1e-7)
