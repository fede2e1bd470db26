#!/bin/sh
# Chart and GitOps checks with no cluster: the Helm chart rendered and linted by Helm's own engine,
# validated against the Kubernetes schemas, its RBAC and Pod Security checked, and the Argo CD health
# check run by a real Lua interpreter. Uses the active virtualenv, or creates target/chart-venv.
set -eu
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x target/chart-venv/bin/python ]; then
    python3 -m venv target/chart-venv
  fi
  # shellcheck disable=SC1091
  . target/chart-venv/bin/activate
fi
python -m pip install --quiet --disable-pip-version-check -r tests/chart/requirements.txt

set -- tests/chart
if [ -d gitops/argocd/tests ]; then
  set -- "$@" gitops/argocd/tests
fi
export PYTHONDONTWRITEBYTECODE=1
python -m pytest -q -p no:cacheprovider "$@"
