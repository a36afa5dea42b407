"""`inv compare --models`, checked: the comparison itself is `compare/`."""

from __future__ import annotations

from hello_kubeflow.errors import SettingsError
from hello_kubeflow.settings import MODEL_PRESETS


def parse_models(text: str) -> list[tuple[str, str]]:
    """`forest:default,forest:book,mlp` as (model, preset) pairs (a bare model: its `default`).

    Raises:
        SettingsError: an unknown model or preset, naming the choices.
    """
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
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
