"""Settings: read from the environment and .env, checked, secrets kept hidden."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hello_kubeflow import project
from hello_kubeflow.errors import CheckoutError, SettingsError
from hello_kubeflow.project import find_root, project_root, require_checkout
from hello_kubeflow.settings import (
    _READ_ELSEWHERE,
    MASK,
    VARIABLES,
    Settings,
    env_example,
    env_name,
    environment,
    load_settings,
)

REPO = Path(__file__).resolve().parents[1]
# strict, on one file, the package read for its types only
MYPY = (sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--strict", "--no-error-summary")
MYPY += ("--follow-imports=silent", "--ignore-missing-imports")


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert settings.mode == "local"
    assert settings.preset == "default"
    assert settings.server_url == "http://127.0.0.1:9000"


def test_values_are_parsed_to_their_types() -> None:
    settings = Settings.from_env(
        {
            "HK_MODE": "Cluster",
            "HK_QUERY_TIMEOUT": "2.5",
            "HK_SERVE_PORT": "8080",
            "MNIST_DIR": "/data/mnist",
            "HK_WAIT_NAMESPACES": "kubeflow, istio-system",
            "CONTAINER_REGISTRY": "localhost:5000/",
        },
        dotenv=None,
    )
    assert settings.mode == "cluster"
    assert settings.query_timeout == 2.5
    assert settings.serve_port == 8080
    assert settings.mnist_dir == Path("/data/mnist")
    assert settings.wait_namespaces == ("kubeflow", "istio-system")
    assert settings.container_registry == "localhost:5000"


def test_every_bad_value_is_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"HK_MODE": "laptop", "HK_QUERY_TIMEOUT": "soon", "HK_SERVE_PORT": "99999"},
            dotenv=None,
        )
    message = str(caught.value)
    assert "HK_MODE='laptop': expected one of local, cluster" in message
    assert "HK_QUERY_TIMEOUT='soon': expected a number of seconds" in message
    assert "HK_SERVE_PORT='99999'" in message
    assert ".env.example" in message


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf"])
def test_timeouts_must_be_positive_and_finite(value: str) -> None:
    with pytest.raises(SettingsError, match="HK_WAIT_TIMEOUT"):
        Settings.from_env({"HK_WAIT_TIMEOUT": value}, dotenv=None)


@pytest.mark.parametrize(
    "registry",
    ["localhost:5000", "quay.io/me", "ghcr.io/org/team", "registry.example.com:443/a-b"],
)
def test_registry_accepts_host_and_namespace(registry: str) -> None:
    assert Settings.from_env({"CONTAINER_REGISTRY": registry}, dotenv=None).container_registry


@pytest.mark.parametrize(
    "registry", ["https://quay.io/me", "quay.io/Me", "localhost:port", "quay.io/me:v1", "a b"]
)
def test_registry_rejects_malformed_values(registry: str) -> None:
    with pytest.raises(SettingsError, match="CONTAINER_REGISTRY"):
        Settings.from_env({"CONTAINER_REGISTRY": registry}, dotenv=None)


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("HK_PRESET=book\nHK_SEED=7\n")
    settings = Settings.from_env({"HK_SEED": "9"}, dotenv=dotenv)
    assert settings.preset == "book"
    assert settings.seed == 9


def test_bad_value_in_dotenv_is_reported(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("HK_SERVE_WORKERS=many\n")
    with pytest.raises(SettingsError, match="HK_SERVE_WORKERS='many'"):
        Settings.from_env({}, dotenv=dotenv)


def test_secrets_never_appear_in_errors_repr_or_description() -> None:
    secret = "s3cr3t-t0ken"
    settings = Settings.from_env(
        {"HK_KFP_TOKEN": secret, "HK_REGISTRY_PASSWORD": secret}, dotenv=None
    )
    assert secret not in repr(settings)
    described = settings.describe()
    assert described["HK_KFP_TOKEN"] == MASK
    assert secret not in str(described)


def test_a_refused_value_is_quoted_unless_it_is_a_secret() -> None:
    """Every error about a value (environment, .env, command line) goes through one rule."""
    by_env = {var.env: var for var in VARIABLES}
    refused = ValueError("expected name=value")
    shown = by_env["HK_KFP_COOKIE"].problem("--kfp-cookie", "s3cr3t", refused)
    assert shown == f"--kfp-cookie={MASK}: expected name=value"
    assert by_env["HK_SEED"].problem("HK_SEED", "x", refused) == "HK_SEED='x': expected name=value"


def test_command_line_override_is_checked_like_the_environment() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert settings.override({"preset": "book", "seed": 3}).preset == "book"
    with pytest.raises(SettingsError, match="--preset='fast': expected one of default, book"):
        settings.override({"preset": "fast"})


def test_command_line_text_is_read_like_the_environments_spaces_and_all() -> None:
    """`--mode " cluster"` means what `HK_MODE=" cluster"` means; `--host " x"` is trimmed."""
    settings = Settings.from_env({}, dotenv=None)
    from_env = Settings.from_env({"HK_MODE": " cluster", "HK_MODEL_KIND": "mlp "}, dotenv=None)
    given = settings.override({"mode": " cluster", "model_kind": "mlp ", "serve_host": " 0.0.0.0"})
    assert (
        (given.mode, given.model_kind) == (from_env.mode, from_env.model_kind) == ("cluster", "mlp")
    )
    assert given.serve_host == "0.0.0.0"


def test_command_line_numbers_are_checked_like_the_environment() -> None:
    """`inv serve --port 70000` is a settings error, not an OverflowError from bind()."""
    settings = Settings.from_env({}, dotenv=None)
    assert settings.override({"serve_port": 8080, "wait_timeout": 2.5}).serve_port == 8080
    with pytest.raises(SettingsError) as caught:
        settings.override({"serve_port": 70000, "serve_workers": -2, "n_estimators": 0})
    assert caught.value.problems == [
        "--serve-port=70000: expected a port number between 1 and 65535 (0: any free port)",
        "--serve-workers=-2: expected a whole number from 1 to 32",
        "--n-estimators=0: expected a whole number >= 1",
    ]


def test_env_example_documents_every_variable() -> None:
    text = (REPO / ".env.example").read_text()
    documented = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert sorted(set(documented)) == sorted(var.env for var in VARIABLES)
    for var in VARIABLES:
        # each variable's line is preceded by a comment line
        before = text.split(f"\n{var.env}=")[0].rstrip().splitlines()[-1]
        assert before.startswith("#"), f"{var.env} has no comment in .env.example"


def test_env_example_holds_no_secret_values() -> None:
    text = (REPO / ".env.example").read_text()
    for var in VARIABLES:
        if var.secret:
            assert re.search(rf"^{var.env}=$", text, flags=re.MULTILINE)


def test_direct_construction_is_checked_like_the_environment() -> None:
    """`Settings(...)` cannot make what `HK_SERVE_PORT=70000` could not."""
    with pytest.raises(SettingsError) as caught:
        Settings(serve_port=70000, mode="nowhere")
    assert caught.value.problems == [
        "HK_MODE='nowhere': expected one of local, cluster",
        "HK_SERVE_PORT='70000': expected a port number between 1 and 65535 (0: any free port)",
    ]


def test_replace_is_checked_like_the_environment() -> None:
    with pytest.raises(SettingsError, match="HK_KUBE_REQUEST_TIMEOUT='-1'"):
        Settings().replace(kube_request_timeout=-1)


def test_construction_normalises_like_the_environment() -> None:
    settings = Settings(mode="CLUSTER", gateway_url="http://gw.example/")
    assert (settings.mode, settings.gateway_url) == ("cluster", "http://gw.example")


def _checkout(root: Path) -> Path:
    for marker in ("tasks.py", "pyproject.toml"):
        (root / marker).write_text("")
    (root / "docs").mkdir()
    return root


def test_dotenv_and_outputs_come_from_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a subfolder, `.env` is the root's and relative paths are the root's."""
    root = _checkout(tmp_path)
    (root / ".env").write_text("HK_SERVE_PORT=9123\nMNIST_DIR=data/mnist\n")
    monkeypatch.chdir(root / "docs")
    settings = load_settings(find_root(Path.cwd()))
    assert settings.serve_port == 9123
    assert settings.project_root == root.resolve()
    assert settings.output_dir == root.resolve() / "outputs"
    assert settings.mnist_dir == root.resolve() / "data/mnist"


def test_outside_a_checkout_the_current_folder_stands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(project, "_chosen", [])  # as if no tasks.py had named a root
    project_root.cache_clear()
    try:
        settings = load_settings()
    finally:
        project_root.cache_clear()
    assert settings.project_root is None
    assert settings.output_dir == tmp_path / "outputs"


def test_a_wheel_install_says_which_task_needs_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(CheckoutError, match="inv build-push needs the hello-kubeflow checkout"):
        require_checkout(find_root(tmp_path), "build-push")


def test_a_powershell_dotenv_utf16_with_a_bom_is_read(tmp_path: Path) -> None:
    """`Set-Content .env ...` in Windows PowerShell writes UTF-16 with a byte-order mark."""
    dotenv = tmp_path / ".env"
    dotenv.write_bytes("HK_PRESET=book\r\nHK_SEED=7\r\n".encode("utf-16"))
    settings = Settings.from_env({}, dotenv=dotenv)
    assert (settings.preset, settings.seed) == ("book", 7)


def test_a_dotenv_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes("HK_SEED=7\n# café au lait\n".encode("latin-1"))
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({}, dotenv=dotenv)
    assert caught.value.problems == [
        f"{dotenv} line 2: cannot be decoded as UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


def test_a_dotenv_line_python_dotenv_cannot_parse_names_the_file_and_line(tmp_path: Path) -> None:
    """An unclosed quote: not a silent default preset with a warning that names no file."""
    dotenv = tmp_path / ".env"
    dotenv.write_text('HK_SEED=7\nHK_PRESET="book\n')
    with pytest.raises(SettingsError, match=re.escape(f"{dotenv} line 2: python-dotenv cannot")):
        Settings.from_env({}, dotenv=dotenv)


def test_an_unknown_hk_name_is_warned_about_with_where_and_the_closest_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# a typo\nHK_PRSET=book\n")
    Settings.from_env({"HK_SERVE_PROT": "9001", "HK_TEST_MNIST_DIR": "/x"}, dotenv=dotenv)
    assert [r.getMessage() for r in caplog.records] == [
        f"{dotenv} line 2: HK_PRSET is not a setting and is ignored; did you mean HK_PRESET?",
        "the environment: HK_SERVE_PROT is not a setting and is ignored; did you mean "
        "HK_SERVE_PORT?",
    ]


@pytest.mark.parametrize("workers", ["0", "33", "100000"])
def test_serve_workers_outside_1_to_32_are_refused(workers: str) -> None:
    with pytest.raises(SettingsError, match="expected a whole number from 1 to 32"):
        Settings.from_env({"HK_SERVE_WORKERS": workers}, dotenv=None)


def test_kubernetes_names_are_checked_like_the_notebook_name() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "HK_NAMESPACE": "Team_A",
                "HK_DEPLOYMENT_NAME": "my model",
                "HK_WAIT_NAMESPACES": "a,B",
            },
            dotenv=None,
        )
    assert [p.split("=")[0] for p in caught.value.problems] == [
        "HK_WAIT_NAMESPACES",
        "HK_NAMESPACE",
        "HK_DEPLOYMENT_NAME",
    ]


def test_no_hk_name_the_project_itself_reads_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scripts' and tests' own variables (HK_TEST_MNIST_DIR, ...) are not typos."""
    reads = re.compile(r"""(?:environ(?:\.get\(|\[)|getenv\(|env\.)["']?(HK_\w+)|\$\{?(HK_\w+)""")
    read: set[str] = set()
    for folder in ("scripts", "tests", ".ci", ".github", "hello_kubeflow"):
        for path in [*(REPO / folder).rglob("*"), REPO / "Dockerfile"]:
            if path.is_file() and path.suffix in (".py", ".sh", ".yml", ".yaml", ".cjs", ""):
                text = path.read_text(errors="replace")
                read.update(a or b for a, b in reads.findall(text))
    assert {"HK_TEST_MNIST_DIR", "HK_ACTIONLINT_DIR", "HK_VENV"} <= read
    for name in sorted(read):
        caplog.clear()
        with contextlib.suppress(SettingsError):  # "1" may be malformed for a setting
            Settings.from_env({name: "1"}, dotenv=None)
        assert not caplog.records, name


def test_env_example_is_generated_from_the_settings() -> None:
    """`.env.example` says what `Settings` declares: each help, default and section, in order."""
    fix = "run: python -m hello_kubeflow.settings --env-example > .env.example"
    assert (REPO / ".env.example").read_text(encoding="utf-8") == env_example(), fix


def test_the_generator_command_writes_env_example_and_refuses_anything_else() -> None:
    command = [sys.executable, "-m", "hello_kubeflow.settings"]
    made = subprocess.run([*command, "--env-example"], capture_output=True, text=True, cwd=REPO)
    assert (made.returncode, made.stdout) == (0, env_example())
    wrong = subprocess.run([*command, "--env"], capture_output=True, text=True, cwd=REPO)
    assert wrong.returncode == 1
    assert wrong.stderr == "usage: python -m hello_kubeflow.settings --env-example > .env.example\n"


def test_settings_doc_table_names_declared_settings_and_their_defaults() -> None:
    """Each variable in docs/settings.md's table is a setting; each default it gives is real."""
    variables = {var.env: var for var in VARIABLES}
    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    section = page.split("\n## The settings you are most likely to set\n")[1]
    table = [line for line in section.split("\n## ")[0].splitlines() if line.startswith("| `")]
    assert len(table) >= 5
    for row in table:
        names_cell, defaults_cell = (cell.strip() for cell in row.split("|")[1:3])
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", names_cell)
        assert set(names) <= set(variables), row
        defaults = defaults_cell.split(", ") if defaults_cell else [""] * len(names)
        for name, shown in zip(names, defaults, strict=True):
            var = variables[name]
            if not shown:
                assert var.default is None, f"{name}: docs/settings.md gives no default"
            elif shown.startswith("`"):  # a value in backticks is the variable's text
                assert var.rule(shown.strip("`")) == var.default, name


def test_every_variable_the_package_names_is_a_setting_declared_once() -> None:
    """A message naming `HK_GATEWAY_URL` cannot outlive a renamed setting.

    Other modules name variables in messages (which variable to set) and in the
    model server container's environment; `settings.py` declares each name once.
    """
    declared = [var.env for var in VARIABLES]
    pattern = re.compile(r"\b(HK_[A-Z0-9_]*[A-Z0-9]|MNIST_DIR|CONTAINER_REGISTRY|KUBECONFIG)\b")
    package = REPO / "hello_kubeflow"
    for path in sorted(package.rglob("*.py")):
        for name in pattern.findall(path.read_text(encoding="utf-8")):
            assert name in declared or name.startswith(_READ_ELSEWHERE) or name == "HK_PRSET", (
                f"{path.relative_to(REPO)} names {name}, which is no setting"
            )
    source = (package / "settings.py").read_text(encoding="utf-8")
    for name in declared:
        assert source.count(f'"{name}"') == 1, name


# Names the package writes out that are not ours: kubectl reads its own KUBECONFIG.
_NOT_OURS = {("hello_kubeflow/kube/port_forward.py", "KUBECONFIG")}


def test_no_variable_name_is_written_twice_in_the_package() -> None:
    """A variable's name is written once, where it is declared; code that needs it asks
    `env_name` or `environment`, so renaming a variable is one edit."""
    declared = {var.env for var in VARIABLES}
    written: list[tuple[str, str]] = []
    for path in sorted((REPO / "hello_kubeflow").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in declared:
                written.append((path.relative_to(REPO).as_posix(), node.value))
    outside = [w for w in written if w[0] != "hello_kubeflow/settings.py" and w not in _NOT_OURS]
    assert not outside, f"write these through env_name/environment: {outside}"
    assert sorted(name for where, name in written if where.endswith("settings.py")) == sorted(
        declared
    )


def test_the_environment_for_some_settings_is_their_variables_and_text() -> None:
    assert environment(serve_port=9001, wait_namespaces=("a", "b"), mnist_dir=None) == {
        "HK_SERVE_PORT": "9001",
        "HK_WAIT_NAMESPACES": "a,b",
        "MNIST_DIR": "",
    }
    assert env_name("kubeconfig") == "KUBECONFIG"


def test_mypy_rejects_a_misspelt_choice(tmp_path: Path) -> None:
    """Choices are Literal types: `mode == "clustr"` and `serving="kserv"` fail type checking."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from hello_kubeflow.settings import Settings\n"
        "settings = Settings.from_env({}, dotenv=None)\n"
        'assert settings.mode == "cluster" or settings.model_kind == "mlp"\n'
        'assert settings.mode != "clustr"\n'
        'Settings(serving="kserve", profile="full")\n'
        'Settings(serving="kserv")\n'
    )
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    checked = subprocess.run(
        [*MYPY, "--cache-dir", str(tmp_path / "cache"), snippet.name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(REPO)},
        timeout=120,
    )
    errors = re.findall(r"^snippet\.py:(\d+): error: (.*)$", checked.stdout, re.MULTILINE)
    assert [int(line) for line, _ in errors] == [4, 6], checked.stdout + checked.stderr
    assert errors[0][1].startswith("Non-overlapping equality check")
    assert "incompatible type \"Literal['kserv']\"" in errors[1][1]


def test_values_given_in_code_are_checked_as_their_text_would_be() -> None:
    """`replace` and the constructor: text is read as from the environment, a wrong type refused."""
    settings = Settings()

    assert settings.replace(mnist_dir="~/x").mnist_dir == Path("~/x").expanduser()
    assert settings.replace(serve_port="8080").serve_port == 8080  # type: ignore[arg-type]
    for field, value in (("serve_port", True), ("serve_port", 8.5), ("wait_timeout", True)):
        with pytest.raises(SettingsError, match="expected a"):
            settings.replace(**{field: value})
    with pytest.raises(SettingsError, match="HK_MODE='1': expected text"):
        settings.replace(mode=1)


@pytest.mark.parametrize("variable", ["HK_SERVE_PORT", "HK_NOTEBOOK_PORT"])
def test_a_port_is_1_to_65535(variable: str) -> None:
    """The edges: 65535 is a port, 65536 is not (nor -1)."""
    assert getattr(Settings.from_env({variable: "65535"}, dotenv=None), _field(variable)) == 65535
    for outside in ("65536", "-1"):
        with pytest.raises(SettingsError, match=f"{variable}='{outside}': expected a port number"):
            Settings.from_env({variable: outside}, dotenv=None)


def test_a_registry_given_with_a_scheme_is_told_to_drop_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CONTAINER_REGISTRY": "https://quay.io/me"}, dotenv=None)

    assert "CONTAINER_REGISTRY='https://quay.io/me': drop the scheme" in str(refused.value)


def _field(variable: str) -> str:
    return next(v.field for v in VARIABLES if v.env == variable)


_WHOLE = "expected a whole number"
_PORT = "expected a port number between 1 and 65535"
_URL = "expected an http:// or https:// URL, e.g. http://localhost:8080"
_SECONDS = "expected a positive, finite number of seconds"
_WAIT = "expected 0 or a positive, finite number of seconds"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("HK_PROFILE", "all", "expected one of pipelines, full"),
        ("HK_SEED", "seven", _WHOLE),
        ("HK_SEED", "-1", f"{_WHOLE} >= 0"),
        ("HK_N_JOBS", "-2", f"{_WHOLE} >= -1"),
        ("HK_WAIT_TIMEOUT", "soon", "expected a number of seconds, e.g. 30 or 2.5"),
        ("HK_WAIT_TIMEOUT", "0", _SECONDS),
        ("HK_WAIT_TIMEOUT", "inf", _SECONDS),
        ("HK_WAIT_TIMEOUT", "nan", _SECONDS),
        ("HK_QUERY_WAIT", "soon", "expected a number of seconds, e.g. 0 or 30"),
        ("HK_QUERY_WAIT", "-0.5", _WAIT),
        ("HK_QUERY_WAIT", "inf", _WAIT),
        ("HK_QUERY_WAIT", "nan", _WAIT),
        ("HK_SERVE_PORT", "http", _WHOLE),
        ("HK_SERVE_PORT", "65536", f"{_PORT} (0: any free port)"),
        ("HK_NOTEBOOK_PORT", "0", _PORT),
        (
            "CONTAINER_REGISTRY",
            "quay.io/meX",
            "expected a lowercase registry address with no tag, e.g. localhost:5000, "
            "quay.io/me or ghcr.io/org",
        ),
        ("HK_QUERY_URL", "localhost:8080", _URL),
        ("HK_QUERY_URL", "http://", _URL),
        ("HK_KFP_ENDPOINT", "ftp://kfp.example", _URL),
        ("HK_MNIST_MIRRORS", "https://a.example/, ftp://b.example/", _URL),
        (
            "CONTAINER_REGISTRY",
            "https://quay.io/me",
            "drop the scheme: expected e.g. localhost:5000 or quay.io/me",
        ),
        (
            "CONTAINER_REGISTRY",
            "quay.io/Me",
            "expected a lowercase registry address with no tag, e.g. localhost:5000, "
            "quay.io/me or ghcr.io/org",
        ),
        (
            "HK_NOTEBOOK_MEMORY",
            "lots",
            "expected a Kubernetes quantity, e.g. 500m or 1 (CPU), 2Gi (memory)",
        ),
        (
            "HK_NOTEBOOK_NAME",
            "My-Notebook",
            "expected a lowercase name of letters, digits and '-' (at most 63), "
            "e.g. hello-kubeflow",
        ),
    ],
)
def test_a_bad_value_is_refused_saying_what_is_expected(
    variable: str, value: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value}, dotenv=None)
    assert caught.value.problems == [f"{variable}={value!r}: {problem}"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HK_PROFILE", "Full", "full"),
        ("HK_SEED", "0", 0),
        ("HK_N_JOBS", "-1", -1),
        ("HK_WAIT_TIMEOUT", "0.5", 0.5),
        ("HK_QUERY_WAIT", "0", 0.0),
        ("HK_QUERY_WAIT", "0.5", 0.5),
        ("HK_SERVE_PORT", "0", 0),
        ("HK_NOTEBOOK_PORT", "1", 1),
        ("HK_QUERY_URL", "https://kfp.example:8443/", "https://kfp.example:8443"),
        ("HK_QUERY_URL", "http://kfp.example/X", "http://kfp.example/X"),
        ("HK_MNIST_MIRRORS", "https://a.example/x,  https://b.example/y/", None),
        ("CONTAINER_REGISTRY", "quay.io/me/", "quay.io/me"),
    ],
)
def test_a_value_at_the_edge_is_accepted_and_normalised(
    variable: str, value: str, expected: object
) -> None:
    settings = Settings.from_env({variable: value}, dotenv=None)
    if expected is None:  # mirrors: a list, each URL ending in "/" (the file names follow)
        expected = ("https://a.example/x/", "https://b.example/y/")
    assert getattr(settings, _field(variable)) == expected


def test_the_description_shows_lists_joined_and_unset_values_empty() -> None:
    settings = Settings.from_env(
        {"HK_WAIT_NAMESPACES": "kubeflow,istio-system", "HK_KFP_TOKEN": "t0ken"}, dotenv=None
    )
    described = settings.describe()
    assert described["HK_WAIT_NAMESPACES"] == "kubeflow,istio-system"
    assert described["HK_SERVE_PORT"] == "9000"
    assert described["HK_KFP_TOKEN"] == MASK
    assert described["MNIST_DIR"] == ""
    assert Settings.from_env({}, dotenv=None).describe()["HK_WAIT_NAMESPACES"] == ""


def test_override_keeps_values_that_are_not_text_and_names_the_flag_given() -> None:
    """A Path from the command line is kept as it is; the message uses the option's own name."""
    settings = Settings.from_env({}, dotenv=None)
    changed = settings.override({"model_dir": Path("models/a"), "seed": 3})
    assert (changed.model_dir, changed.seed) == (Path("models/a"), 3)
    with pytest.raises(SettingsError) as caught:
        settings.override({"serve_port": 70000}, flags={"serve_port": "--port"})
    assert caught.value.problems == [f"--port=70000: {_PORT} (0: any free port)"]


def test_the_download_cache_defaults_to_the_users_cache_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings.from_env({}, dotenv=None).cache_dir == tmp_path / ".cache" / "hello-kubeflow"


def test_the_root_given_is_where_dotenv_is_read_wherever_the_task_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "checkout").mkdir()
    root = _checkout(tmp_path / "checkout")
    (root / ".env").write_text("HK_SERVE_PORT=9123\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setattr(project, "_chosen", [])
    project_root.cache_clear()
    try:
        settings = load_settings(root)
    finally:
        project_root.cache_clear()
    assert (settings.serve_port, settings.project_root) == (9123, root)
