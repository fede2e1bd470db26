#!/bin/sh
# Install or upgrade the Tycho chart with the image built by build.sh. Extra arguments go to helm, e.g.
#   minikube/install.sh --set replicas=2 --set logFormat=json
set -eu
. "$(dirname "$0")/lib.sh"
need helm kubectl

say "helm upgrade --install $TYCHO_RELEASE (namespace $TYCHO_NAMESPACE)"
helm upgrade --install "$TYCHO_RELEASE" "$TYCHO_ROOT/charts/tycho" \
  --kube-context "$MINIKUBE_PROFILE" \
  --namespace "$TYCHO_NAMESPACE" --create-namespace \
  --set image.repository="$TYCHO_IMAGE_REPOSITORY" \
  --set image.tag="$TYCHO_IMAGE_TAG" \
  --set image.pullPolicy=Never \
  --wait --timeout 5m \
  "$@"
kc get crd systems.tycho.dev
kc -n "$TYCHO_NAMESPACE" get deployment,pods -l app.kubernetes.io/instance="$TYCHO_RELEASE"
