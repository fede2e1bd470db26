#!/bin/sh
# Print the URL of each example System: http://<minikube ip>:<node port from the System's status>.
#   minikube/urls.sh [nginx jupyter rstudio ...]
set -eu
. "$(dirname "$0")/lib.sh"
need minikube kubectl

if [ "$#" -eq 0 ]; then
  set -- nginx jupyter rstudio
fi
ns=$TYCHO_EXAMPLES_NAMESPACE
ip=$(mk ip)

for name in "$@"; do
  if ! kc -n "$ns" get system "$name" >/dev/null 2>&1; then
    printf '%-10s not running (minikube/examples.sh %s)\n' "$name" "$name"
    continue
  fi
  port=$(kc -n "$ns" get system "$name" -o jsonpath='{.status.endpoints[0].nodePort}')
  if [ -z "$port" ]; then
    printf '%-10s no node port yet (phase %s)\n' "$name" \
      "$(kc -n "$ns" get system "$name" -o jsonpath='{.status.phase}')"
    continue
  fi
  url="http://$ip:$port"
  case "$name" in
    jupyter)
      token=$(kc -n "$ns" get secret jupyter-token -o go-template='{{.data.token | base64decode}}')
      printf '%-10s %s/lab?token=%s\n' "$name" "$url" "$token"
      ;;
    rstudio)
      password=$(kc -n "$ns" get secret rstudio-password -o go-template='{{.data.password | base64decode}}')
      printf '%-10s %s   (user rstudio, password %s)\n' "$name" "$url" "$password"
      ;;
    *)
      printf '%-10s %s\n' "$name" "$url"
      ;;
  esac
done
