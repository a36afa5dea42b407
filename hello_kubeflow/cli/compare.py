"""`inv compare`'s options: the models asked for, checked, then the comparison (`compare/`)."""

from __future__ import annotations

from pathlib import Path

from hello_kubeflow.compare.comparison import Comparison, compare_models
from hello_kubeflow.errors import SettingsError
from hello_kubeflow.settings import MODEL_PRESETS, Settings


def parse_models(text: str) -> list[tuple[str, str]]:
    """`forest:default,forest:book,mlp` as (model, preset) pairs (a bare model: its `default`).

    Raises:
        SettingsError: an unknown model or preset, naming the choices.
    """
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        model, _, preset = item.partition(":")
        preset = preset or "default"
        if model not in MODEL_PRESETS:
            problems.append(f"--models {item}: unknown model, expected {', '.join(MODEL_PRESETS)}")
        elif preset not in MODEL_PRESETS[model]:
            problems.append(
                f"--models {item}: the {model} model's presets are "
                f"{', '.join(MODEL_PRESETS[model])}"
            )
        elif (model, preset) not in pairs:
            pairs.append((model, preset))
    if not pairs and not problems:
        problems.append("--models is empty: name at least one, e.g. forest:default,mlp")
    if problems:
        raise SettingsError(problems)
    return pairs


def run_compare(
    settings: Settings,
    models: str,
    *,
    train_limit: int = 0,
    test_limit: int = 0,
    retrain: bool = False,
    chart: str = "",
) -> Comparison:
    """Check `--models`, then compare them with the settings' seed (`compare_models`).

    Args:
        settings: the workflow settings; `seed` seeds every model.
        models: `--models` as typed, e.g. `forest:default,mlp`.
        train_limit: train on the first N training images (0: all).
        test_limit: score on the first N test images (0: all).
        retrain: train every model again even when a recorded run matches.
        chart: where the PNG goes (empty: `<output_dir>/comparison.png`).

    Raises:
        SettingsError: an unknown model or preset, or a chart path that is not a PNG file.
    """
    return compare_models(
        settings,
        parse_models(models),
        seed=settings.seed,
        train_limit=train_limit,
        test_limit=test_limit,
        retrain=retrain,
        chart=Path(chart) if chart else None,
    )
