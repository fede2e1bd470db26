# Shared settings and helpers of the minikube scripts. POSIX sh; sourced, not run.
# Every setting can be overridden from the environment.

# shellcheck disable=SC2034 # variables are used by the scripts that source this file
TYCHO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINIKUBE_PROFILE=${MINIKUBE_PROFILE:-minikube}
TYCHO_NAMESPACE=${TYCHO_NAMESPACE:-tycho-system}
TYCHO_RELEASE=${TYCHO_RELEASE:-tycho}
TYCHO_IMAGE_REPOSITORY=${TYCHO_IMAGE_REPOSITORY:-tycho}
TYCHO_IMAGE_TAG=${TYCHO_IMAGE_TAG:-dev}
# Namespace the example Systems run in.
TYCHO_EXAMPLES_NAMESPACE=${TYCHO_EXAMPLES_NAMESPACE:-default}
# How long to wait for an example to become Ready (the Jupyter and RStudio images are large).
TYCHO_WAIT=${TYCHO_WAIT:-15m}

say() {
  printf '==> %s\n' "$*"
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (see minikube/README.md)"
  done
}

mk() {
  minikube --profile "$MINIKUBE_PROFILE" "$@"
}

# kubectl against the minikube profile's context, whatever the current context is.
kc() {
  kubectl --context "$MINIKUBE_PROFILE" "$@"
}

# A random hex string of $1 bytes, with what macOS and Linux both have.
random_hex() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex "$1"
  else
    LC_ALL=C tr -dc 'a-f0-9' </dev/urandom | head -c "$(($1 * 2))"
    echo
  fi
}
