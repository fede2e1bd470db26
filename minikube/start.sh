#!/bin/sh
# Start a minikube cluster for Tycho (or reuse the running one).
#   MINIKUBE_CPUS=4 MINIKUBE_MEMORY=8g MINIKUBE_DRIVER=docker minikube/start.sh
set -eu
. "$(dirname "$0")/lib.sh"
need minikube kubectl

if mk status >/dev/null 2>&1; then
  say "minikube profile '$MINIKUBE_PROFILE' is already running"
else
  say "starting minikube profile '$MINIKUBE_PROFILE'"
  set -- --cpus "${MINIKUBE_CPUS:-4}" --memory "${MINIKUBE_MEMORY:-8g}"
  if [ -n "${MINIKUBE_DRIVER:-}" ]; then
    set -- "$@" --driver "$MINIKUBE_DRIVER"
  fi
  if [ -n "${MINIKUBE_KUBERNETES_VERSION:-}" ]; then
    set -- "$@" --kubernetes-version "$MINIKUBE_KUBERNETES_VERSION"
  fi
  mk start "$@"
fi
kc get nodes -o wide
say "minikube IP: $(mk ip)"
