"""The model: training and presets, the artifact directory, its fast path, evaluation."""

# Here, not in model.artifact: `inv train`'s process reads them without importing numpy.
LATEST_FILE = "latest.json"  # in the output folder: the last `inv train`'s model directory
EVALUATION_FILE = "evaluation.json"  # in a run's report: absent if the run did not finish
CONFUSION_PNG = "confusion_matrix.png"  # in a run's report, beside EVALUATION_FILE
RECORDED_DIR = "recorded"  # in the output folder: the last local run of each model and preset
