#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment holding the real Seldon Core 1.x
# Python wrapper (`seldon-core-microservice`), for the compatibility test and the
# serving benchmark. Seldon Core is never a dependency of hello-kubeflow itself: its
# pins (Flask<3, numpy<2, protobuf<4, ...) clash with ours, so it lives on its own.
#
# Usage: scripts/seldon_venv.sh [VENV_DIR]
#   VENV_DIR          default: ${HK_CACHE_DIR:-~/.cache/hello-kubeflow}/seldon-venv
#   SELDON_PYTHON     interpreter to build it with (default: the first of python3.11,
#                     python3.10, pyenv's 3.11/3.10 that exists)
#   SELDON_VERSION    seldon-core version (default 1.17.1: the last Apache-2.0 release)
#   SKLEARN_VERSION   scikit-learn version, so pickled forests load (default: none
#                     pinned; pass ours, e.g. `python -c 'import sklearn; print(sklearn.__version__)'`)
# Prints the venv's directory as the last line; exits non-zero with a reason on failure.
set -euo pipefail

venv_dir="${1:-${HK_CACHE_DIR:-$HOME/.cache/hello-kubeflow}/seldon-venv}"
seldon_version="${SELDON_VERSION:-1.17.1}"
sklearn_spec="scikit-learn${SKLEARN_VERSION:+==${SKLEARN_VERSION}}"
stamp="seldon-core==${seldon_version} ${sklearn_spec}"

if [[ -x "$venv_dir/bin/seldon-core-microservice" && -f "$venv_dir/.hk-stamp" ]] \
    && [[ "$(cat "$venv_dir/.hk-stamp")" == "$stamp" ]]; then
    echo "$venv_dir"
    exit 0
fi

find_python() {
    if [[ -n "${SELDON_PYTHON:-}" ]]; then
        echo "$SELDON_PYTHON"
        return 0
    fi
    local candidate
    for candidate in python3.11 python3.10 \
        "$HOME/.pyenv/versions/3.11.7/bin/python3" "$HOME/.pyenv/versions/3.10.13/bin/python3"; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

python="$(find_python)" || {
    echo "no Python 3.10/3.11 found for seldon-core $seldon_version (set SELDON_PYTHON)" >&2
    exit 2
}

rm -rf "$venv_dir"
"$python" -m venv "$venv_dir"
pip=("$venv_dir/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --upgrade "pip>=23" >&2
# seldon-core 1.17 pins: Flask<3, werkzeug<2.3, protobuf<4, numpy<2. setuptools<81 keeps
# pkg_resources, which its gunicorn (<20.2) imports. Our model class needs numpy,
# scikit-learn (pickled forest), onnxruntime (fast path) and python-dotenv (settings).
"${pip[@]}" install \
    "seldon-core==${seldon_version}" \
    "numpy<2" "protobuf>=3.20.2,<4" "Flask<3" "setuptools<81" \
    "$sklearn_spec" "onnxruntime>=1.17" "joblib>=1.3" "python-dotenv>=1.0" >&2
"$venv_dir/bin/python" -c "import seldon_core.microservice, sklearn, onnxruntime" >&2
echo "$stamp" >"$venv_dir/.hk-stamp"
echo "$venv_dir"
