"""The model server: Seldon protocol and Open Inference Protocol (V2) over HTTP.

Modules, each small and by concern:

- `features`: validate a batch of images (numpy only; shared with `seldon_model`).
- `describe`: what the server says about its model (Seldon and V2 metadata).
- `protocol`: parse request bodies (JSON, form-encoded `json=`) of both protocols.
- `bodies`: read a body (size limit, gzip, charsets); parse large ones in a helper process.
- `feedback`: Seldon feedback, validated as the wrapper's protos are, and counted.
- `responses`: encode answers and error bodies (orjson).
- `app`: the Starlette application and its routes.
- `openapi`: the OpenAPI 3 description served at `/openapi.json`.
- `deadlines`: uvicorn's protocol with a deadline for each request to arrive (slow clients),
  a header size limit, JSON refusals every client can read, and a draining stop.
- `server`: run the app under uvicorn (`run_server`), or in a thread (`running_server`).
- `seldon_model`: `MnistClassifier`, the same model for `seldon-core-microservice`.

Nothing is imported here, so `seldon_model` loads in an environment that has only
numpy and the model's runtime (the Seldon wrapper's own venv).
"""

SERVER_COMMAND = ("python3", "-m", "hello_kubeflow.serving")
"""How a container of the project image runs the model server. The image is a
notebook image (its own entrypoint and command start Jupyter), so every server
container names this command: `inv serve --container` as its entrypoint, the
cluster's serving manifests as the container's `command`."""
