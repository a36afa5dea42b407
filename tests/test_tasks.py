"""The command line itself: every task listed, and option clashes refused up front."""

from __future__ import annotations

import inspect
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from inv_support import REPO, environment_without_settings, run_inv, start_inv
from serving_support import call, make_tiny_model

TASKS = [
    "build-push",
    "clean",
    "compare",
    "compile",
    "demo",
    "notebook",
    "query",
    "serve",
    "setup",
    "status",
    "test",
    "train",
    "undeploy",
    "wait",
]


def _environment(tmp_path: Path) -> dict[str, str]:
    """Only the venv on PATH, a fresh HOME, outputs in `tmp_path`."""
    return {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "HK_OUTPUT_DIR": str(tmp_path / "out"),
    }


def test_inv_list_shows_every_task_with_a_one_line_description(tmp_path: Path) -> None:
    result = run_inv("--list", env=_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    listed = {
        line.split()[0]: line.split(maxsplit=1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("  ") and line.strip() and not line.startswith("    ")
    }
    assert sorted(listed) == sorted(TASKS)
    for name, description in listed.items():
        assert description[0].isupper(), f"{name} has no description"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("query", "--count", "5", "--image", "d.png"), "--count sends MNIST test images"),
        (("query", "--count", "5", "--plot", "p.png"), "--count sends MNIST test images"),
        (("serve", "--container", "--host", "0.0.0.0"), "--host does nothing here: the container"),
        (("train", "--dry-run"), "--dry-run does nothing here: it shows a cluster run"),
        (("train", "--mode", "cluster", "--runner", "docker"), "--runner does nothing here"),
        (("query", "--mode", "cluster", "--protocol", "v2"), "--protocol does nothing here"),
        (("notebook", "--cpu", "2"), "--cpu does nothing here: they are for a cluster"),
        (("notebook", "--delete"), "--delete does nothing here: they are for a cluster"),
        (("notebook", "--mode", "cluster", "--port", "9999"), "--port does nothing here"),
    ],
)
def test_clashing_options_are_refused_before_any_work(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_inv(*args, env=_environment(tmp_path))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _task_objects() -> dict[str, Any]:
    from invoke import Collection

    sys.path.insert(0, str(REPO))
    try:
        import tasks
    finally:
        sys.path.remove(str(REPO))
    collection = Collection.from_module(tasks)
    return {name: collection[name] for name in collection.task_names}


def test_every_option_of_every_task_has_help() -> None:
    """`inv --help TASK` explains each option: none is left bare."""
    for name, task in _task_objects().items():
        options = [p for p in inspect.signature(task.body).parameters if p != "c"]
        missing = [o for o in options if not task.help.get(o)]
        assert not missing, f"inv {name}: no help for {missing}"


def test_every_task_with_a_result_takes_json() -> None:
    """`--json` means the same everywhere; only the long-running serve and test lack it."""
    for name, task in _task_objects().items():
        options = inspect.signature(task.body).parameters
        assert ("json" in options) == (name not in ("serve", "test")), name


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("serve", "--port", "abc"), "--port='abc': expected a whole number"),
        (("query", "--wait", "abc"), "--wait='abc': expected a number"),
        (("query", "--index", "abc"), "--index='abc': expected a whole number"),
        (("clean", "--keep", "many"), "--keep='many': expected a whole number"),
        (("train", "--trees", "1.5"), "--trees='1.5': expected a whole number"),
        (("compare", "--train-limit", "x"), "--train-limit='x': expected a whole number"),
        (("query", "--url", "notaurl"), "--url='notaurl': expected an http:// or https:// URL"),
    ],
)
def test_a_malformed_option_value_is_a_clean_error(
    tmp_path: Path, args: tuple[str, ...], shown: str
) -> None:
    """The same one paragraph as a malformed setting, exit 1, never a traceback."""
    result = run_inv(*args, env=_environment(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid settings")
    assert shown in result.stderr
    assert "Traceback" not in result.stderr


def test_a_subfolder_uses_the_project_roots_env_and_outputs(tmp_path: Path) -> None:
    """From docs/, `.env` and the relative HK_OUTPUT_DIR are the checkout's, not the cwd's."""
    root = tmp_path / "checkout"
    for name in ("tasks.py", "pyproject.toml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((REPO / name).read_text())
    (root / ".env").write_text("HK_OUTPUT_DIR=elsewhere\n")
    for run in ("r1", "r2"):
        (root / "elsewhere" / "runs" / run).mkdir(parents=True)
        os.utime(root / "elsewhere" / "runs" / run, (1_700_000_000, 1_700_000_000))  # not running
    (root / "docs").mkdir()

    result = run_inv(
        "clean",
        "--keep",
        "0",
        "--dry-run",
        "--json",
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
        cwd=root / "docs",
    )

    assert result.returncode == 0, result.stderr
    removed = json.loads(result.stdout.splitlines()[-1])["removed"]
    assert sorted(removed) == [str(root / "elsewhere" / "runs" / r) for r in ("r1", "r2")]


# Every task, each of its options given a wrong value, and what the one message must name.
# `{tmp}` is the test's own folder. Each is refused before any work: nothing under outputs/.
WRONG_VALUES = [
    (("build-push", "--dry-run", "--tag", "bad!tag"), "--tag"),
    (("build-push", "--base-image"), "--base-image"),
    (("clean", "--keep", "-1"), "--keep"),
    (("clean", "--keep", "many"), "--keep"),
    (("compare", "--seed", "-1"), "--seed"),
    (("compare", "--models", "forest:fast"), "--models"),
    (("compare", "--chart", "chart.txt"), "--chart"),
    (("compare", "--train-limit", "-5"), "--train-limit"),
    (("compile", "--output", "{tmp}"), "--output"),
    (("compile", "--output", "{tmp}/job.json"), "--output"),
    (("compile", "--output", "/proc/hk/job.yaml"), "--output"),
    (("compile", "--output"), "--output"),
    (("demo", "--trees", "0"), "--trees"),
    (("demo", "--model", "cnn"), "--model"),
    (("demo", "--count", "-1"), "--count"),
    (("demo", "--protocol", "grpc"), "--protocol"),
    (("demo", "--plot", "plot.txt"), "--plot"),
    (("demo", "--runner", "k8s"), "--runner"),
    (("notebook", "--port", "70000"), "--port"),
    (("notebook", "--mode", "moon"), "--mode"),
    (("notebook", "--mode", "cluster", "--timeout", "-5"), "--timeout"),
    (("notebook", "--mode", "cluster", "--cpu", "lots"), "--cpu"),
    (("notebook", "--mode", "cluster", "--name", "Bad_Name"), "--name"),
    (("query", "--wait", "-1"), "--wait"),
    (("query", "--wait"), "--wait"),
    (("query", "--index", "-5"), "--index"),
    (("query", "--count", "-1"), "--count"),
    (("query", "--protocol", "grpc"), "--protocol"),
    (("query", "--url", "notaurl"), "--url"),
    (("query", "--image", "{tmp}/missing.png"), "--image"),
    (("query", "--plot", "plot.txt"), "--plot"),
    (("serve", "--port", "70000"), "--port"),
    (("serve", "--workers", "0"), "--workers"),
    (("serve", "--workers", "100000"), "--workers"),
    (("serve", "--model", "{tmp}/no-model"), "--model"),
    (("setup", "--mode", "moon"), "--mode"),
    (("setup", "--profile", "huge"), "--profile"),
    (("setup", "--serving", "triton"), "--serving"),
    (("status", "--namespaces", "Bad_NS"), "--namespaces"),
    (("test", "--pytest-args"), "--pytest-args"),
    (("train", "--trees", "0"), "--trees"),
    (("train", "--trees", "many"), "--trees"),
    (("train", "--seed", "-1"), "--seed"),
    (("train", "--model", "cnn"), "--model"),
    (("train", "--preset", "fast"), "--preset"),
    (("train", "--runner", "k8s"), "--runner"),
    (("train", "--test-limit", "-1"), "--test-limit"),
    (("train", "--mode", "moon"), "--mode"),
    (("undeploy", "--name", "Bad_Name"), "--name"),
    (("undeploy", "--namespace", "Kubeflow"), "--namespace"),
    (("wait", "--timeout", "-5"), "--timeout"),
    (("wait", "--timeout", "0"), "--timeout"),
    (("wait", "--namespaces", "Bad_NS"), "--namespaces"),
]


def _assert_one_message(result: subprocess.CompletedProcess[str], named: str) -> None:
    """Exit 1; stderr one message (an `error:` paragraph, or invoke's one line) naming `named`."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert lines, "no message at all"
    assert lines[0].startswith(("error: ", "Flag ")), result.stderr
    assert sum(line.startswith("error:") for line in lines) <= 1, result.stderr
    assert named in result.stderr, result.stderr


def test_every_task_with_a_wrong_value_names_it_in_one_message() -> None:
    """The list above covers every task."""
    assert sorted({args[0] for args, _ in WRONG_VALUES}) == sorted(TASKS)


@pytest.mark.parametrize(
    ("args", "named"), [pytest.param(*w, id=" ".join(w[0])) for w in WRONG_VALUES]
)
def test_a_wrong_option_value_is_one_message_exit_1(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    env = {
        **_environment(tmp_path),
        "HK_CACHE_DIR": str(tmp_path / "cache"),
        "HK_MNIST_MIRRORS": "http://127.0.0.1:9/",  # nothing listens: nothing is downloaded
    }
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_inv(*given, env=env, timeout=60)
    _assert_one_message(result, named)
    assert not (tmp_path / "out").exists()


BROKEN_DOTENVS = {
    "latin-1": ("HK_SEED=7\n# café\n".encode("latin-1"), ".env line 2: cannot be decoded"),
    "unparseable": (b'HK_SEED=7\nHK_PRESET="book\n', ".env line 2: python-dotenv cannot parse"),
    "malformed": (b"HK_SEED=7\nHK_SERVE_PORT=ninety\n", "HK_SERVE_PORT='ninety'"),
}


# Each task (but `inv test`, which reads no settings) with one of the broken files, in turn.
_BROKEN_BY_TASK = [
    (name, sorted(BROKEN_DOTENVS)[i % len(BROKEN_DOTENVS)])
    for i, name in enumerate(t for t in TASKS if t != "test")
]


@pytest.mark.parametrize(("name", "broken"), _BROKEN_BY_TASK)
def test_a_broken_dotenv_is_one_message_naming_the_file(
    tmp_path: Path, name: str, broken: str
) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    for kept in ("tasks.py", "pyproject.toml"):
        (root / kept).write_text((REPO / kept).read_text())
    content, named = BROKEN_DOTENVS[broken]
    (root / ".env").write_bytes(content)
    result = run_inv(name, env=_environment(tmp_path), cwd=root, timeout=60)
    _assert_one_message(result, named)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("query", "-w SECONDS, --wait=SECONDS"),
        ("query", "-i N, --index=N"),
        ("serve", "-p PORT, --port=PORT"),
        ("serve", "-m DIR, --model=DIR"),
        ("train", "--trees=N"),
        ("compile", "--output=FILE"),
        ("wait", "--timeout=SECONDS"),
    ],
)
def test_help_shows_what_an_option_takes(tmp_path: Path, name: str, shown: str) -> None:
    """`--wait=SECONDS`, not a bare `--wait` that reads as an on/off flag."""
    result = run_inv("--help", name, env=_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert shown in result.stdout


@pytest.mark.parametrize("given", ["--wait", "-w"])
def test_an_option_left_without_its_value_is_one_line_naming_it(tmp_path: Path, given: str) -> None:
    """Not invoke's `Flag --wait=SECONDS needed value and was not given one!`."""
    result = run_inv("query", given, env=_environment(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --wait needs a value: give it as --wait=SECONDS"
    ]


def _query_context() -> Any:
    from invoke.parser import ParserContext

    return ParserContext(name="query", args=_task_objects()["query"].get_arguments())


def test_invokes_parser_still_calls_what_the_adapter_wraps() -> None:
    """An invoke upgrade that stops calling the wrapped methods fails here, naming its version."""
    import invoke
    from invoke.exceptions import Exit
    from invoke.parser import Parser

    upgrade = f"invoke {invoke.__version__}: hello_kubeflow/cli/invoke_adapter.py"
    shown = _query_context().help_for("--wait")[0]
    assert shown == "-w SECONDS, --wait=SECONDS", f"{upgrade}: ParserContext.help_for not wrapped"
    with pytest.raises(Exit) as missing:
        Parser(contexts=[_query_context()]).parse_argv(["query", "--index", "3", "--wait"])
    assert missing.value.message == "error: --wait needs a value: give it as --wait=SECONDS", (
        f"{upgrade}: ParseMachine.complete_flag not wrapped"
    )
    parsed = Parser(contexts=[_query_context()]).parse_argv(["query", "--wait", "2.5"])
    assert parsed[0].args["wait"].value == 2.5


def test_an_invoke_without_a_wrapped_method_is_refused_naming_its_version_and_the_method() -> None:
    import invoke
    from invoke.parser import ParserContext

    from hello_kubeflow.cli.invoke_adapter import wrapped

    with pytest.raises(ImportError) as refused:
        wrapped(ParserContext, "help_for_flag")
    assert str(refused.value).startswith(
        f"invoke {invoke.__version__} has no ParserContext.help_for_flag, which "
        "hello_kubeflow/cli/invoke_adapter.py wraps: install invoke>=2.2,<4"
    )


def test_serve_port_0_is_any_free_port_as_hk_serve_port_0(mnist_dir: Path, tmp_path: Path) -> None:
    """`--port 0` means what HK_SERVE_PORT=0 means, not "not given" (which is 9000)."""
    model = make_tiny_model(mnist_dir, tmp_path / "model")
    server = start_inv("serve", "--model", str(model), "--port", "0", env=_environment(tmp_path))
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while "serving" not in line and time.monotonic() < deadline:
            ready, _, _ = select.select([server.stderr], [], [], 1.0)
            line = server.stderr.readline() if ready else ""
        found = re.search(r"at http://127\.0\.0\.1:(\d+) ", line)
        assert found, line
        port = int(found.group(1))
        assert port not in (0, 9000)
        assert call(f"http://127.0.0.1:{port}/health/ping")[0] == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_a_note_on_an_error_says_what_the_task_was_doing_before_the_message() -> None:
    from invoke.exceptions import Exit

    from hello_kubeflow.cli.options import user_errors
    from hello_kubeflow.errors import QueryError

    problem = QueryError("no answer")
    problem.add_note("inv demo, querying its server")
    with pytest.raises(Exit) as raised, user_errors():
        raise problem
    assert raised.value.message == "error: inv demo, querying its server: no answer"


@pytest.mark.slow
def test_inv_test_from_a_subfolder_checks_the_whole_project_without_colour_codes() -> None:
    """ruff and mypy read the project root, not the folder `inv` was typed in."""
    done = run_inv(
        "test",
        "--quick",
        "--pytest-args=--collect-only -q tests/test_architecture.py",
        env=environment_without_settings(),
        cwd=REPO / "docs",
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Success: no issues found in" in done.stdout  # mypy found the package
    assert "No Python files found" not in done.stdout + done.stderr
    assert "\x1b[" not in done.stdout  # not a terminal: the commands are shown plain


def test_every_option_that_sets_a_setting_is_named_right_in_its_messages() -> None:
    """A refused `--trees 0` names `--trees`: each `settings_for(field=option)` in tasks.py."""
    import ast

    from hello_kubeflow.cli.options import flag_for

    pairs = [
        (keyword.arg, keyword.value.id)
        for node in ast.walk(ast.parse((REPO / "tasks.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "settings_for"
        for keyword in node.keywords
        if keyword.arg and isinstance(keyword.value, ast.Name)
    ]
    assert len(pairs) > 10
    wrong = [(f, o) for f, o in pairs if flag_for(f) != "--" + o.replace("_", "-")]
    assert not wrong, f"messages would name the wrong option for (setting, option): {wrong}"


def test_a_local_train_leaves_garbage_collection_on_for_a_task_chained_after_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`inv train serve`: the server runs in the same process, so collection must be back on."""
    import gc
    import importlib.util

    from hello_kubeflow.cli import commands
    from hello_kubeflow.cli.commands import Done

    spec = importlib.util.spec_from_file_location("tasks_under_test", REPO / "tasks.py")
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(commands, "train", lambda settings, **_: Done("trained", {}))
    assert gc.isenabled()
    try:
        tasks.train.body(None, mode="local")
        assert gc.isenabled(), "a local train left the collector off"
    finally:
        gc.enable()
        gc.unfreeze()
