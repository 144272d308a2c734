#!/usr/bin/env bash
# mypy on both packages (pyproject's [tool.mypy] names them and the folders that hold them).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/mypy "$@"
