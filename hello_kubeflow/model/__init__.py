"""The model: training and presets, the artifact directory, its fast path, evaluation."""
