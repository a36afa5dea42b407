"""The project's notebook server: a Kubeflow Notebook, or the image run here."""
