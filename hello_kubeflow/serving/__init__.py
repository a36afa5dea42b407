"""The model server: Seldon protocol and Open Inference Protocol (V2) over HTTP.

Nothing is imported here, so `seldon_model` loads where only numpy and the model runtime are.
"""

SERVER_COMMAND = ("python3", "-m", "hello_kubeflow.serving")
"""How a server container of the project image runs (its own command starts Jupyter):
`inv serve --container`'s entrypoint, the cluster manifests' `command`."""
