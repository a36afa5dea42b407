"""inv setup --render DIR, then an install from DIR with no network.

Rendering needs kustomize and the network; here a stand-in `kustomize` on
PATH prints what `kustomize build` printed for each pinned source (the shared
copy in ../shared/upstream was made exactly so), and KServe's release files
come from a local HTTP server laid out like GitHub's release downloads.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from apiserver import ApiServer
from crd_schemas import UPSTREAM
from emulators import RunningCluster
from http_support import BackgroundHTTPServer
from kube_support import node

from hello_kubeflow.errors import ManifestError, PrerequisiteError
from hello_kubeflow.install.components import PLATFORM_KUSTOMIZE
from hello_kubeflow.install.install import install
from hello_kubeflow.install.render import render_manifests
from hello_kubeflow.retry import Backoff
from hello_kubeflow.settings import Settings

pytestmark = pytest.mark.skipif(
    not (UPSTREAM / "README.md").is_file(),
    reason=f"upstream's rendered manifests are not at {UPSTREAM} (HK_TEST_UPSTREAM_DIR)",
)
SOURCES = {
    "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=2.17.0": (
        "kubeflow-pipelines-2.17.0/cluster-scoped-resources.yaml"
    ),
    "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=2.17.0": (
        "kubeflow-pipelines-2.17.0/env-platform-agnostic.yaml"
    ),
    "github.com/SeldonIO/seldon-core/operator/config/lite?ref=v1.17.1": (
        "seldon-core-v1.17.1/operator-config-lite.yaml"
    ),
    "github.com/kubeflow/manifests/example?ref=26.03": "kubeflow-manifests-26.03/example.yaml",
}
_KUSTOMIZE = """#!{python}
import json, sys
from pathlib import Path
here = Path(__file__).resolve().parent
with open(here / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["version"]:  # what `kustomize version` prints: its release
    sys.stdout.write((here / "version").read_text())
    sys.exit(0)
sources = json.loads((here / "sources.json").read_text())
if sys.argv[1:2] != ["build"] or sys.argv[2] not in sources:
    sys.stderr.write(f"Error: accumulating resources: {{sys.argv[2:]}}: no such source\\n")
    sys.exit(1)
sys.stdout.write(Path(sources[sys.argv[2]]).read_text())
"""


@pytest.fixture
def kustomize(tmp_path: Path) -> Path:
    """A stand-in `kustomize build` that prints upstream's render of each pinned source."""
    tools = tmp_path / "tools"
    tools.mkdir()
    script = tools / "kustomize"
    script.write_text(_KUSTOMIZE.format(python=sys.executable))
    script.chmod(0o755)
    (tools / "sources.json").write_text(
        json.dumps({k: str(UPSTREAM / v) for k, v in SOURCES.items()})
    )
    (tools / "version").write_text(f"v{PLATFORM_KUSTOMIZE}\n")
    return script


def _calls(kustomize: Path) -> list[list[str]]:
    calls = kustomize.parent / "calls.jsonl"
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


class _Releases(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        prefix = "/kserve/kserve/releases/download/v0.20.0/"
        path = UPSTREAM / "kserve-v0.20.0" / self.path.removeprefix(prefix)
        if not self.path.startswith(prefix) or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _FlakyReleases(_Releases):
    """The first request for each file answers 503, as a release mirror under load does."""

    def do_GET(self) -> None:
        refused: set[str] = self.server.owner.refused  # type: ignore[attr-defined]
        if self.path not in refused:
            refused.add(self.path)
            self.send_error(503)
            return
        super().do_GET()


@pytest.fixture
def releases() -> Iterator[str]:
    with BackgroundHTTPServer(_Releases) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.mark.slow
def test_render_writes_one_folder_per_component_in_upstreams_layout(
    tmp_path: Path, kustomize: Path, releases: str
) -> None:
    out = tmp_path / "rendered"

    written = render_manifests(
        Settings(serving="kserve"), out, kustomize=f"{kustomize} build", release_base=releases
    )

    assert sorted(str(p.relative_to(out)) for p in written) == [
        "kserve-v0.20.0/kserve-cluster-resources.yaml",
        "kserve-v0.20.0/kserve-crds.yaml",
        "kserve-v0.20.0/kserve.yaml",
        "kubeflow-manifests-26.03/example.yaml",
        "kubeflow-pipelines-2.17.0/cluster-scoped-resources.yaml",
        "kubeflow-pipelines-2.17.0/env-platform-agnostic.yaml",
    ]
    for path in written:
        assert path.read_bytes() == (UPSTREAM / path.relative_to(out)).read_bytes()


@pytest.mark.slow
def test_a_rendered_folder_installs_with_no_network(
    tmp_path: Path, kustomize: Path, releases: str
) -> None:
    out = tmp_path / "rendered"
    render_manifests(Settings(), out, kustomize=f"{kustomize} build", release_base=releases)
    kustomize.unlink()  # nothing left to render with: the install must not need it

    with RunningCluster(ApiServer()) as cluster:
        cluster.put_object("v1/nodes", None, "worker", node("worker", "8", "16Gi"))
        settings = cluster.settings(
            tmp_path, manifests_dir=out, pipeline_image="x", wait_namespaces=("default",)
        )
        cluster.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default"},
                "status": {"phase": "Succeeded"},
            }
        )
        lines = install(settings, backoff=Backoff(0.05, 0.2), settle=0, apply_deadline=30)
        stored = cluster.call(cluster.emulator.applied)

    assert "applied Kubeflow Pipelines 2.17.0: 88 objects" in lines
    assert "applied Seldon Core v1.17.1: 12 objects" in lines
    assert ("apps/v1", "Deployment", "kubeflow", "ml-pipeline") in stored


def test_a_failed_build_names_the_source_and_kustomizes_message(
    tmp_path: Path, kustomize: Path
) -> None:
    with pytest.raises(ManifestError, match=r"example\?ref=v9.*no such source"):
        render_manifests(
            Settings(profile="full", kubeflow_version="v9"),
            tmp_path,
            kustomize=f"{kustomize} build",
        )


def test_an_older_kustomize_5_renders_and_a_failure_says_which_release_to_install(
    tmp_path: Path, kustomize: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kubeflow/manifests 26.03 builds its example with kustomize v5.8.1 (its kind script)."""
    (kustomize.parent / "version").write_text("v5.5.0\n")
    release = f"https://github.com/kubernetes-sigs/kustomize/releases/tag/kustomize%2Fv{PLATFORM_KUSTOMIZE}"

    with pytest.raises(ManifestError) as caught:
        render_manifests(
            Settings(profile="full", kubeflow_version="v9"),
            tmp_path,
            kustomize=f"{kustomize} build",
        )

    said = str(caught.value)
    assert "no such source" in said
    assert f"has kustomize v5.5.0, older than v{PLATFORM_KUSTOMIZE}" in said
    assert release in said
    assert any("v5.5.0" in m and release in m for m in caplog.messages)
    assert [c[0] for c in _calls(kustomize)] == ["version", "build"]


def test_a_kustomize_older_than_5_is_refused_before_building(
    tmp_path: Path, kustomize: Path
) -> None:
    """kustomize 3 and 4 print `{Version:kustomize/v4.5.7 ...}` (its docs' `version` page)."""
    (kustomize.parent / "version").write_text(
        "{Version:kustomize/v4.5.7 GitCommit:56d82a8 BuildDate:2022-08-02T16:35:54Z "
        "GoOs:linux GoArch:amd64}\n"
    )

    with pytest.raises(
        PrerequisiteError, match=r"kustomize v4\.5\.7, which cannot build"
    ) as caught:
        render_manifests(Settings(profile="full"), tmp_path / "out", kustomize=f"{kustomize} build")

    assert f"kustomize%2Fv{PLATFORM_KUSTOMIZE}" in str(caught.value)
    assert _calls(kustomize) == [["version"]]
    assert not (tmp_path / "out").exists()


def test_kubectls_own_kustomize_is_the_one_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No kustomize on PATH: `kubectl kustomize`, whose release `kubectl version` reports.

    The answer is kubectl v1.32.4's `version --client -o json` (its `kustomizeVersion`).
    """
    tools = tmp_path / "tools"
    tools.mkdir()
    answer = {"clientVersion": {"gitVersion": "v1.32.4"}, "kustomizeVersion": "v5.5.0"}
    (tools / "kubectl").write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tools / "calls"}\n'
        f"if [ \"$1\" = version ]; then echo '{json.dumps(answer)}'; exit 0; fi\n"
        "echo 'Error: accumulating resources: no network' >&2; exit 1\n"
    )
    (tools / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))

    with pytest.raises(ManifestError, match=r"`kubectl` has kustomize v5\.5\.0, older than"):
        render_manifests(Settings(profile="full"), tmp_path / "out")

    calls = (tools / "calls").read_text().splitlines()
    assert calls[0] == "version --client -o json"
    assert calls[1].startswith("kustomize github.com/kubeflow/manifests/example?ref=")


def test_rendering_without_kustomize_or_kubectl_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(PrerequisiteError, match="rendering needs kustomize 5"):
        render_manifests(Settings(), tmp_path / "out")


@pytest.mark.slow
def test_a_release_file_answered_503_is_retried_with_a_line_saying_so(
    tmp_path: Path, kustomize: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with BackgroundHTTPServer(_FlakyReleases) as server, caplog.at_level(logging.WARNING):
        server.refused = set()  # type: ignore[attr-defined]
        written = render_manifests(
            Settings(serving="kserve"),
            tmp_path / "rendered",
            kustomize=f"{kustomize} build",
            release_base=f"http://127.0.0.1:{server.port}",
        )

    retries = [r.getMessage() for r in caplog.records if "next try in" in r.getMessage()]
    assert len(retries) == 3, retries
    assert all(" failed (HTTP 503), attempt 1; next try in " in line for line in retries)
    assert len(written) == 6
