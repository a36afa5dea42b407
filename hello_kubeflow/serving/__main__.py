"""`python -m hello_kubeflow.serving`: the model server without invoke (images, benchmarks).

Same as `inv serve`: options win over the environment (`HK_SERVE_*`, `HK_MODEL_DIR`).
"""

from __future__ import annotations

import argparse
import sys

from hello_kubeflow.console import configure_logging
from hello_kubeflow.errors import HelloKubeflowError
from hello_kubeflow.serving.server import resolve_model_dir, run_server
from hello_kubeflow.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    """Parse options, serve until Ctrl-C or SIGTERM; 1 with a message on a user error."""
    parser = argparse.ArgumentParser(prog="python -m hello_kubeflow.serving", description=__doc__)
    parser.add_argument("--model", default="", help="model directory (default: HK_MODEL_DIR)")
    parser.add_argument("--host", default="", help="address to bind (default: HK_SERVE_HOST)")
    parser.add_argument(
        "--port", type=int, default=None, help="port, 0: any free one (default: HK_SERVE_PORT)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: HK_SERVE_WORKERS)"
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        flags = {"serve_host": "--host", "serve_port": "--port", "serve_workers": "--workers"}
        values = (args.host or None, args.port, args.workers)
        given = {k: v for k, v in zip(flags, values, strict=True) if v is not None}
        settings = load_settings().override(given, flags)
        run_server(settings, resolve_model_dir(settings, args.model))
    except HelloKubeflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
