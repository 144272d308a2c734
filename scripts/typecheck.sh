#!/usr/bin/env bash
# mypy on both packages under their installed names (the folders are engine/ and daemon/;
# the editable install maps them with an import hook mypy cannot follow, so it reads a link tree).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .typecheck
ln -sfn ../engine .typecheck/fawkes_engine
ln -sfn ../daemon .typecheck/fawkes_daemon
MYPYPATH=.typecheck exec .venv/bin/mypy -p fawkes_engine -p fawkes_daemon "$@"
