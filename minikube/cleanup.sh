#!/bin/sh
# Remove what the other scripts created.
#   minikube/cleanup.sh           delete the example Systems and uninstall the chart (the CRD stays)
#   minikube/cleanup.sh --crd     also delete the System CRD (deletes every remaining System and its children)
#   minikube/cleanup.sh --delete  also delete the minikube cluster
set -eu
. "$(dirname "$0")/lib.sh"
need kubectl helm

delete_crd=no
delete_cluster=no
for arg in "$@"; do
  case "$arg" in
    --crd) delete_crd=yes ;;
    --delete) delete_crd=yes; delete_cluster=yes ;;
    *) die "unknown option $arg (use --crd or --delete)" ;;
  esac
done

ns=$TYCHO_EXAMPLES_NAMESPACE
if kc get crd systems.tycho.dev >/dev/null 2>&1; then
  for name in nginx jupyter rstudio; do
    say "deleting system/$name (its Deployment, Service and ConfigMap follow through owner references)"
    kc -n "$ns" delete system "$name" --ignore-not-found --wait=true
  done
fi
kc -n "$ns" delete secret jupyter-token rstudio-password --ignore-not-found
say "the claim rstudio-home is kept (Tycho never deletes claims): kubectl delete pvc rstudio-home"

if helm --kube-context "$MINIKUBE_PROFILE" -n "$TYCHO_NAMESPACE" status "$TYCHO_RELEASE" >/dev/null 2>&1; then
  say "helm uninstall $TYCHO_RELEASE"
  helm --kube-context "$MINIKUBE_PROFILE" -n "$TYCHO_NAMESPACE" uninstall "$TYCHO_RELEASE" --wait
fi

if [ "$delete_crd" = yes ]; then
  say "deleting the System CRD: every remaining System, and through owner references its children, goes with it"
  kc delete crd systems.tycho.dev --ignore-not-found
fi
if [ "$delete_cluster" = yes ]; then
  need minikube
  say "deleting minikube profile $MINIKUBE_PROFILE"
  mk delete
fi
