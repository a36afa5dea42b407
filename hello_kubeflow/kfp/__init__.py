"""Kubeflow Pipelines on a cluster: the client, upload, runs, a cluster run end to end."""
