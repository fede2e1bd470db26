#!/bin/sh
# Follow logs.
#   minikube/logs.sh            the operator
#   minikube/logs.sh jupyter    the pods of the System "jupyter" (e.g. for Jupyter's token)
set -eu
. "$(dirname "$0")/lib.sh"
need kubectl

if [ "$#" -eq 0 ]; then
  kc -n "$TYCHO_NAMESPACE" logs -f --prefix --all-containers --max-log-requests 10 \
    -l app.kubernetes.io/instance="$TYCHO_RELEASE",app.kubernetes.io/component=controller
else
  kc -n "$TYCHO_EXAMPLES_NAMESPACE" logs -f --prefix --all-containers --max-log-requests 10 \
    -l tycho.dev/system="$1"
fi
