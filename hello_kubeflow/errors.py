"""Every error a user can cause or meet, under one base class; each message names the fix."""

from __future__ import annotations


class HelloKubeflowError(Exception):
    """Base class: a problem the user can act on, with a message saying how."""


class SettingsError(HelloKubeflowError):
    """One or more settings are missing or malformed: `problems`, one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid settings (environment, .env or command line):\n{lines}\n"
            "Fix the values above (see .env.example for every variable)."
        )


class CheckoutError(HelloKubeflowError):
    """A task needs the project's checkout (Dockerfile, build context), not just the package."""


class UsageError(HelloKubeflowError):
    """Command-line options that do not go together, or that do nothing in the chosen mode."""


class DataError(HelloKubeflowError):
    """MNIST could not be read or fetched."""


class DataFileError(DataError):
    """A data file is truncated, corrupt or not the file we expected."""


class DownloadError(DataError):
    """Every mirror failed for a file (`failures`: `<url>: <why>`; `offline`: none answered)."""

    def __init__(self, message: str, *, failures: tuple[str, ...] = (), offline: bool = False):
        self.failures = failures
        self.offline = offline
        super().__init__(message)


class ModelError(HelloKubeflowError):
    """A model artifact is missing, incomplete or not a model."""


class PipelineError(HelloKubeflowError):
    """Compiling or running the pipeline failed."""


class StepFailedError(PipelineError):
    """One step of a pipeline run failed."""

    def __init__(self, step: str, cause: str) -> None:
        super().__init__(f"pipeline step '{step}' failed: {cause}")


class ServingError(HelloKubeflowError):
    """The model server cannot start or serve."""


class QueryError(HelloKubeflowError):
    """The query did not get a usable answer."""


class EndpointError(QueryError):
    """The endpoint could not be reached (`unreachable`: why, e.g. `Connection refused`) or
    answered with an error."""

    def __init__(self, message: str, *, unreachable: str = "") -> None:
        super().__init__(message)
        self.unreachable = unreachable


class SanityCheckError(QueryError):
    """The answer is not ten class probabilities naming a digit 0-9."""


class ImageError(HelloKubeflowError):
    """Building or pushing the project image failed."""


class DockerUnavailableError(ImageError):
    """No Docker engine is reachable."""


class BuildError(ImageError):
    """A Dockerfile step failed."""


class PushError(ImageError):
    """The registry refused or failed the push."""


class RegistryAuthError(PushError):
    """The registry refused our credentials (never retried)."""


class RegistryUnavailableError(PushError):
    """The registry could not be reached, timed out or answered 5xx (retried)."""


class ClusterError(HelloKubeflowError):
    """Talking to Kubernetes or Kubeflow failed."""


class PrerequisiteError(ClusterError):
    """A tool, kubeconfig, context or cluster resource is missing."""


class ManifestError(ClusterError):
    """Rendered manifests are missing, unreadable, or hold something that is not an object."""


class ApplyError(ClusterError):
    """Applying manifests failed; carries the API server's own message."""


class PodFailedError(ClusterError):
    """A pod is in a state that will not heal by waiting."""


class WaitTimeoutError(ClusterError):
    """The deadline passed before everything was ready."""


class KfpError(ClusterError):
    """The Kubeflow Pipelines API could not be reached or refused us."""


class LoginError(ClusterError):
    """Logging in to Kubeflow through Dex and oauth2-proxy failed (never shows the password)."""


class RunFailedError(ClusterError):
    """A pipeline run on the cluster failed, errored, was canceled or timed out."""


class DeploymentError(ClusterError):
    """The served model did not become available in the cluster."""


class NotebookError(ClusterError):
    """The notebook server could not be made, or did not become ready."""
