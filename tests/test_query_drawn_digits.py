"""Hand-drawn digits through `inv query --image`, the forest against the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from drawn_digits import STYLES, draw_all, draw_digit, on_grey_paper
from PIL import Image

from hello_kubeflow.data.mnist import load_mnist, scale_pixels
from hello_kubeflow.model.mlp import MlpPreset
from hello_kubeflow.model.train import Preset, build_metadata, save_model, train_model
from hello_kubeflow.query.client import query_digit
from hello_kubeflow.query.digits import load_digit_png
from hello_kubeflow.serving.server import running_server
from hello_kubeflow.settings import Settings

# Trained on the small fixture's 4,000 images (~93% on its test set each), in seconds.
FOREST = Preset("drawn", n_estimators=30, train_size=None, bootstrap=True, description="")
NETWORK = MlpPreset(
    "drawn", (128,), epochs=40, batch_size=128, alpha=1e-3, train_size=None, description=""
)


@pytest.fixture(scope="module")
def models(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A forest and a network trained on the same images, saved as model directories."""
    data = load_mnist(Settings(mnist_dir=mnist_dir))
    x, y = scale_pixels(data.x_train), data.y_train
    made = {}
    for name, preset in (("forest", FOREST), ("mlp", NETWORK)):
        result = train_model(x, y, preset=preset, seed=0, n_jobs=1)
        folder = tmp_path_factory.mktemp(name)
        made[name] = save_model(folder, result, metadata=build_metadata(result))
    return made


@pytest.mark.slow
def test_the_network_reads_drawn_digits_at_least_as_often_as_the_forest(
    models: dict[str, Path], tmp_path: Path
) -> None:
    drawings = draw_all(tmp_path / "drawn")
    right: dict[str, list[str]] = {}
    for name, model_dir in models.items():
        with running_server(Settings(serve_port=0), model_dir) as server:
            settings = Settings(query_url=server.url, query_deadline=10.0)
            right[name] = [
                f"{digit}-{style}"
                for digit, style, png in drawings
                if query_digit(settings, image=png).prediction == digit
            ]
    assert len(right["mlp"]) >= len(right["forest"]), right
    assert len(right["mlp"]) >= 0.9 * len(drawings), right


def test_a_fine_pen_comes_out_like_a_marker(tmp_path: Path) -> None:
    """The shared preprocessing widens a fine pen's strokes to MNIST's width."""
    thin = load_digit_png(draw_digit(7, tmp_path / "thin.png", width=4))
    thick = load_digit_png(draw_digit(7, tmp_path / "thick.png", width=20))
    # Without widening, a 4-pixel pen on a 200-pixel canvas is under half a pixel wide:
    # 24 bright pixels against the marker's 82, correlation 0.69.
    assert (thin > 0.5).sum() >= 0.75 * (thick > 0.5).sum()
    assert np.corrcoef(thin, thick)[0, 1] > 0.72


def test_a_two_on_grey_paper_in_uneven_light_is_read_as_two(
    models: dict[str, Path], tmp_path: Path
) -> None:
    white = draw_digit(2, tmp_path / "white.png", **STYLES["thick"])
    grey = on_grey_paper(white, tmp_path / "grey.png")
    with running_server(Settings(serve_port=0), models["mlp"]) as server:
        result = query_digit(Settings(query_url=server.url, query_deadline=10.0), image=grey)
    assert result.prediction == 2, result.describe()
    assert result.input_like_mnist, result.input_note


def test_noise_and_a_blob_get_a_note_beside_the_unchanged_sanity_check(
    models: dict[str, Path], tmp_path: Path
) -> None:
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), np.uint8)).save(noise)
    blob = tmp_path / "blob.png"
    paper = np.full((200, 200), 255, np.uint8)
    paper[99:101, 99:101] = 0
    Image.fromarray(paper).save(blob)
    digit = draw_digit(3, tmp_path / "three.png", **STYLES["thick"])
    with running_server(Settings(serve_port=0), models["mlp"]) as server:
        settings = Settings(query_url=server.url, query_deadline=10.0)
        results = {png.stem: query_digit(settings, image=png) for png in (noise, blob, digit)}

    for name in ("noise", "blob"):
        result = results[name]
        assert result.sanity.startswith("ok"), result.sanity
        assert not result.input_like_mnist
        assert result.as_dict()["input_note"].startswith("unlike an MNIST digit: too much ink")
        assert "input:      unlike an MNIST digit" in result.describe()
    assert results["three"].input_like_mnist
    assert "input:      looks like an MNIST digit" in results["three"].describe()
