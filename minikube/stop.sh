#!/bin/sh
# Stop the minikube cluster; everything in it (Tycho, the Systems) is back after start.sh.
set -eu
. "$(dirname "$0")/lib.sh"
need minikube
mk stop
