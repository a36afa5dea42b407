"""Mutation testing of the core modules with mutmut: which small bugs do the tests catch?

Usage (from the project root, dev extra installed)::

    nice .venv/bin/python scripts/mutation.py idx          # one module
    nice .venv/bin/python scripts/mutation.py all          # every module, one after the other
    nice .venv/bin/python scripts/mutation.py pods --show  # with each survivor's diff

For each module it copies the tracked files of the checkout into a temporary folder, writes
mutmut's ``[tool.mutmut]`` selection there (the module, and the test files that cover it), runs
``mutmut run`` within a time bound (``--minutes``), prints killed / survived / score and the
survivors, and removes the folder (``--keep`` keeps it, to run ``mutmut show NAME`` in it).

Every mutant counts. Two kinds are also reported apart, so that no number hides another:
*wording* mutants change only the text of a message (a string literal with a space in it:
mutmut's ``"XX...XX"`` wrapping and case changes), *logic* mutants are all the others (operators,
constants, keys and values such as ``"Running"``, removed arguments). The score is killed over
all mutants that were checked, less those judged equivalent in ``EQUIVALENT`` (the same
behaviour as the original, so no test can kill them; each with why, listed in docs/testing.md)
and those in ``AT_IMPORT`` (code mutmut cannot switch on), both counted and printed apart.
Mutants left unchecked when the time bound ends are counted and printed, never dropped.
``--save DIR`` keeps each module's mutants as JSON; ``--load DIR`` reports them again.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).with_name("mutmut")

# module -> (the file to mutate, the test files that cover it)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "protocol": (
        "hello_kubeflow/serving/protocol.py",
        ("tests/test_serving_protocol.py", "tests/test_serving_app.py"),
    ),
    "features": (
        "hello_kubeflow/serving/features.py",
        (
            "tests/test_serving_protocol.py",
            "tests/test_serving_app.py",
            "tests/test_serving_seldon_model.py",
        ),
    ),
    "settings": ("hello_kubeflow/settings.py", ("tests/test_settings.py",)),
    # The waits' tests judge pods too, through an emulated API server: seconds per mutant for
    # 600 mutants. They are left out, so this score is a lower bound.
    "pods": ("hello_kubeflow/kube/pods.py", ("tests/test_kube_pods.py",)),
    "wait": (
        "hello_kubeflow/kube/wait.py",
        ("tests/test_kube_wait.py", "tests/test_kube_wait_crashes.py"),
    ),
    "idx": (
        "hello_kubeflow/data/idx.py",
        ("tests/test_data_idx.py", "tests/test_data_mnist.py"),
    ),
}

# Tests left out of a module's run (a pytest -k expression): these start Seldon's own wrapper
# from its reference venv in a subprocess, which fails under mutmut's test runner.
SKIPPED_TESTS = {
    "features": "not (answer_alike or report_health_alike or every_preset_under or real_wrapper "
    "or official_seldon_client)"
}

# mutant name -> why it behaves exactly as the original (docs/testing.md lists them)
_NO_SECRET_REFUSED = "no secret variable's parser refuses a value (all are text): never shown"
_INF = 'float("INF") is float("inf"): float() reads the name in any case'
_BIG = 'int.from_bytes reads "big" when no byte order is given (Python 3.11, the oldest supported)'
_UINT8 = "the images are uint8 already (read_idx makes them so): the array keeps that type"
_REQUIRED = "a default for a field the Kubernetes API always sets ({}): never used"
_POD = "hello_kubeflow.kube.pods."
_POD_DEFAULTS = {
    "metadata.namespace and .name of a pod": ("x_pod_state", (17, 19, 22, 25, 27, 30)),
    "containerStatuses[].name": ("x_pod_state", (184, 186, 189, 308, 310, 313)),
    "containerStatuses[].restartCount": ("x_pod_state", (285, 287, 291)),
    "containerStatuses[].image": ("x__container_problem", (35, 37, 40)),
    "the container's name": ("x__failure", (37, 39, 42)),
    "ownerReferences[].kind and .name": ("x__controller", (11, 13, 16, 19, 21, 24)),
}
_PROTOCOL = "hello_kubeflow.serving.protocol."
_SPEED_ONLY = (
    "booleans_possible only skips a search that would find nothing: the same answers, slower"
)
_ARRAY_ALREADY = (
    "the values are a numpy array by then, so no search for booleans runs whatever the flag"
)
_FEATURES = "hello_kubeflow.serving.features."
EQUIVALENT: dict[str, str] = {
    f"{_FEATURES}x_as_features__mutmut_10": _SPEED_ONLY,
    f"{_FEATURES}x_from_flat__mutmut_30": _SPEED_ONLY,
    f"{_FEATURES}x__numbers__mutmut_1": "the default is never used: both callers pass the flag",
    f"{_FEATURES}x__numbers__mutmut_10": 'numpy has no dtype kind "X": the same three kinds',
    **dict.fromkeys((f"{_PROTOCOL}x_parse_seldon__mutmut_{n}" for n in (23, 54, 80)), _SPEED_ONLY),
    f"{_PROTOCOL}x_parse_v2__mutmut_44": _SPEED_ONLY,
    **dict.fromkeys(
        (f"{_PROTOCOL}x_parse_seldon__mutmut_{n}" for n in (92, 95, 98)), _ARRAY_ALREADY
    ),
    **dict.fromkeys((f"{_PROTOCOL}x_parse_v2__mutmut_{n}" for n in (54, 57, 58)), _ARRAY_ALREADY),
    f"{_PROTOCOL}x_parse_seldon__mutmut_53": (
        'the field dropped defaults to the same "data.ndarray"'
    ),
    f"{_PROTOCOL}x_seldon_text__mutmut_22": '"UTF-8" and "utf-8" name one codec',
    **{
        f"{_POD}{function}__mutmut_{n}": _REQUIRED.format(field)
        for field, (function, numbers) in _POD_DEFAULTS.items()
        for n in numbers
    },
    f"{_POD}x__container_problem__mutmut_17": (
        "an absent reason is only compared with known reasons: '' and 'XXXX' match none"
    ),
    "hello_kubeflow.data.idx.x__parse__mutmut_8": _BIG,
    "hello_kubeflow.data.idx.x__parse__mutmut_54": _BIG,
    "hello_kubeflow.data.idx.x_read_checksums__mutmut_10": '"UTF-8" and "utf-8" name one codec',
    "hello_kubeflow.data.idx.x_images_and_labels__mutmut_25": _UINT8,
    "hello_kubeflow.data.idx.x_images_and_labels__mutmut_27": _UINT8,
    "hello_kubeflow.data.idx.x__gunzip__mutmut_11": (
        "wbits 32 detects the header and accepts gzip as 31 does; only data that starts with "
        "the gzip magic gets here"
    ),
    "hello_kubeflow.data.idx.x__gunzip__mutmut_20": (
        "one byte more may be decompressed before the same size check refuses the file"
    ),
    "hello_kubeflow.settings.xǁSettingsǁ__post_init____mutmut_24": _NO_SECRET_REFUSED,
    "hello_kubeflow.settings.xǁSettingsǁfrom_env__mutmut_24": _NO_SECRET_REFUSED,
    "hello_kubeflow.settings.xǁSettingsǁoverride__mutmut_18": _NO_SECRET_REFUSED,
    "hello_kubeflow.settings.x__seconds__mutmut_15": _INF,
    "hello_kubeflow.settings.x__wait_seconds__mutmut_12": _INF,
}

# Functions whose mutants mutmut cannot switch on: factories of the parsers that settings.py
# makes once, at import (`VARIABLES`), before any mutant is active. A test of the parser's
# behaviour runs the original closure, so these mutants are counted apart, not in the score.
AT_IMPORT = (
    "hello_kubeflow.settings.x__choice__",
    "hello_kubeflow.settings.x__int__",
)

_KILLED = {"killed", "timeout", "caught by type check"}


@dataclass
class Mutant:
    """One mutant's verdict.

    Attributes:
        name: mutmut's name for it (module, function, number).
        status: mutmut's verdict ("killed", "survived", "not checked", ...).
        diff: the unified diff of the mutated function.
    """

    name: str
    status: str
    diff: str

    @property
    def scored(self) -> bool:
        """Whether the mutant counts in the score (checked, switchable, not equivalent)."""
        return (
            self.status != "not checked"
            and self.name not in EQUIVALENT
            and not self.name.startswith(AT_IMPORT)
        )

    @property
    def wording(self) -> bool:
        """Whether the mutant changes only the text of a message."""
        return _is_wording(self.diff)


def _tokens(lines: list[str]) -> list[tuple[int, str]] | None:
    text = "\n".join(line.strip() for line in lines)
    try:
        return [
            (t.type, t.string)
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.COMMENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        return None


def _is_wording(diff: str) -> bool:
    lines = diff.splitlines()[2:]
    old = _tokens([x[1:] for x in lines if x.startswith("-")])
    new = _tokens([x[1:] for x in lines if x.startswith("+")])
    if old is None or new is None or len(old) != len(new) or old == new:
        return False
    for (old_type, old_text), (new_type, new_text) in zip(old, new, strict=True):
        if old_text == new_text:
            continue
        if old_type != tokenize.STRING or new_type != tokenize.STRING or " " not in old_text:
            return False
    return True


def _dump() -> None:
    """Print every mutant of the mutmut run in the current folder as JSON (in a subprocess:
    mutmut reads its configuration once, from the current folder, when imported)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    out = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for name, code in data.exit_code_by_key.items():
            out.append(
                {
                    "name": name,
                    "status": status_by_exit_code[code],
                    "diff": get_diff_for_mutant(name, path=path),
                }
            )
    json.dump(out, sys.stdout)


def _copy_checkout(dest: Path, ref: str | None) -> None:
    if ref is not None:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        return
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _selection(source: str, tests: tuple[str, ...], top: list[str], skipped: str) -> str:
    def _list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(x) for x in items) + "]"

    extra = ["-k", skipped] if skipped else []
    return (
        "\n[tool.mutmut]\n"
        f'source_paths = ["hello_kubeflow"]\n'
        f"only_mutate = {_list([source])}\n"
        f"pytest_add_cli_args_test_selection = {_list(list(tests))}\n"
        f"pytest_add_cli_args = {_list(['-p', 'no:cacheprovider', '-m', 'not docker', *extra])}\n"
        f"also_copy = {_list(top)}\n"
    )


def run_module(
    key: str, minutes: float, max_children: int, keep: bool, ref: str | None
) -> list[Mutant]:
    """Run mutmut on one module within a time bound and return its mutants.

    Args:
        key: a key of ``MODULES``.
        minutes: the time bound of ``mutmut run``; mutants left are reported "not checked".
        max_children: mutmut's parallel test processes.
        keep: keep the temporary copy (printed) instead of removing it.
        ref: mutate and test the code and tests of this git ref instead of the working tree.

    Returns:
        Every mutant of the module with its verdict and diff.
    """
    source, tests = MODULES[key]
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{key}-"))
    try:
        _copy_checkout(work, ref)
        present = tuple(t for t in tests if (work / t).is_file())
        if present != tests:
            print(f"{key}: not in this tree: {sorted(set(tests) - set(present))}", file=sys.stderr)
        tests = present
        top = sorted(set(os.listdir(work)) - {"hello_kubeflow", "tests", "pyproject.toml"})
        selection = _selection(source, tests, top, SKIPPED_TESTS.get(key, ""))
        with (work / "pyproject.toml").open("a", encoding="utf-8") as f:
            f.write(selection)
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(MUTMUT), "run", "--max-children", str(max_children)],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate()
            print(f"{key}: time bound of {minutes:g} min reached", file=sys.stderr)
        if proc.returncode not in (0, -signal.SIGTERM):
            sys.exit(f"{key}: mutmut failed (exit {proc.returncode}):\n{out[-3000:]}")
        print(f"{key}: mutmut ran {time.monotonic() - started:.0f} s", file=sys.stderr)
        dumped = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--dump"],
            cwd=work,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [Mutant(**m) for m in json.loads(dumped)]
    finally:
        if keep:
            print(f"{key}: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _score(mutants: list[Mutant]) -> str:
    checked = [m for m in mutants if m.scored]
    killed = sum(m.status in _KILLED for m in checked)
    if not checked:
        return "-"
    return f"{killed}/{len(checked)} = {100 * killed / len(checked):.1f}%"


def report(key: str, mutants: list[Mutant], show: bool) -> None:
    """Print one module's figures and survivors.

    Args:
        key: the module's key.
        mutants: its mutants.
        show: print each survivor's diff too.
    """
    counts: dict[str, int] = {}
    for m in mutants:
        counts[m.status] = counts.get(m.status, 0) + 1
    equivalent = [m for m in mutants if m.name in EQUIVALENT]
    print(f"\n== {key} ({MODULES[key][0]}): {len(mutants)} mutants")
    print("   " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    made_at_import = [m for m in mutants if m.name.startswith(AT_IMPORT)]
    print(f"   judged equivalent: {len(equivalent)}")
    if made_at_import:
        killed = sum(m.status in _KILLED for m in made_at_import)
        print(f"   in parsers made at import: {len(made_at_import)} ({killed} killed anyway)")
    print(f"   score, all:     {_score(mutants)}")
    print(f"   score, logic:   {_score([m for m in mutants if not m.wording])}")
    print(f"   score, wording: {_score([m for m in mutants if m.wording])}")
    for m in mutants:
        if m.status in _KILLED or m.status == "not checked":
            continue
        kind = "wording" if m.wording else "logic"
        why = f"  (equivalent: {EQUIVALENT[m.name]})" if m.name in EQUIVALENT else ""
        if m.name.startswith(AT_IMPORT):
            why = "  (made at import: mutmut cannot switch it on)"
        print(f"   {m.status}: {m.name} [{kind}]{why}")
        if show:
            print("      " + "\n      ".join(m.diff.splitlines()[2:]))


def main() -> None:
    """Parse the arguments and run each module chosen."""
    if sys.argv[1:] == ["--dump"]:
        _dump()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", choices=[*MODULES, "all"], help="the module to mutate, or all")
    parser.add_argument("--minutes", type=float, default=20, help="time bound per module")
    parser.add_argument("--max-children", type=int, default=2, help="parallel test processes")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument("--ref", help="the code and tests of a git ref (e.g. main), not the tree")
    parser.add_argument("--save", type=Path, help="also write each module's mutants to DIR")
    parser.add_argument(
        "--load", type=Path, help="report the mutants saved in DIR instead of running mutmut"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args()
    if not MUTMUT.exists():
        sys.exit(f"no mutmut beside {sys.executable}: pip install -e '.[dev]' installs it")
    for key in MODULES if args.module == "all" else [args.module]:
        if args.load is not None:
            saved = json.loads((args.load / f"{key}.json").read_text(encoding="utf-8"))
            mutants = [Mutant(**m) for m in saved]
        else:
            mutants = run_module(key, args.minutes, args.max_children, args.keep, args.ref)
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{key}.json").write_text(
                json.dumps([vars(m) for m in mutants]), encoding="utf-8"
            )
        report(key, mutants, args.show)


if __name__ == "__main__":
    main()
