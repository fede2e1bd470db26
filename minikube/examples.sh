#!/bin/sh
# Run the Jupyter, RStudio and nginx examples as Systems and print where to reach them:
# minikube's IP and the node port the operator reports in each System's status.
#   minikube/examples.sh               # all three
#   minikube/examples.sh nginx         # only some
set -eu
. "$(dirname "$0")/lib.sh"
need minikube kubectl

if [ "$#" -eq 0 ]; then
  set -- nginx jupyter rstudio
fi
ns=$TYCHO_EXAMPLES_NAMESPACE

# What the examples expect to exist before they start.
prepare() {
  case "$1" in
    jupyter)
      if ! kc -n "$ns" get secret jupyter-token >/dev/null 2>&1; then
        say "creating Secret jupyter-token"
        kc -n "$ns" create secret generic jupyter-token --from-literal=token="$(random_hex 24)" >/dev/null
      fi
      ;;
    rstudio)
      if ! kc -n "$ns" get secret rstudio-password >/dev/null 2>&1; then
        say "creating Secret rstudio-password"
        kc -n "$ns" create secret generic rstudio-password --from-literal=password="$(random_hex 12)" >/dev/null
      fi
      if ! kc -n "$ns" get pvc rstudio-home >/dev/null 2>&1; then
        say "creating PersistentVolumeClaim rstudio-home (Tycho mounts it and never deletes it)"
        kc -n "$ns" apply -f - <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: rstudio-home
spec:
  accessModes: ["ReadWriteOnce"]
  resources:
    requests:
      storage: 1Gi
YAML
      fi
      ;;
  esac
}

for name in "$@"; do
  file="$TYCHO_ROOT/examples/$name.yaml"
  [ -f "$file" ] || die "no example $file"
  prepare "$name"
  say "kubectl apply -f examples/$name.yaml"
  kc -n "$ns" apply -f "$file"
done

say "waiting for the Systems to be Ready (up to $TYCHO_WAIT each; large images take a while to pull)"
for name in "$@"; do
  if ! kc -n "$ns" wait --for=condition=Ready "system/$name" --timeout="$TYCHO_WAIT"; then
    kc -n "$ns" get system "$name" -o wide || true
    kc -n "$ns" describe system "$name" | tail -20 || true
    die "system/$name did not become Ready"
  fi
done

"$(dirname "$0")/urls.sh" "$@"
