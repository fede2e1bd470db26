#!/bin/sh
# Build the Tycho image from the Dockerfile straight into minikube's container runtime, so the chart can
# use it with imagePullPolicy Never and no registry.
set -eu
. "$(dirname "$0")/lib.sh"
need minikube

image="$TYCHO_IMAGE_REPOSITORY:$TYCHO_IMAGE_TAG"
say "building $image inside minikube (the first build compiles every dependency: several minutes)"
mk image build -t "$image" "$TYCHO_ROOT"
mk image ls | grep -F "$TYCHO_IMAGE_REPOSITORY" || die "the image $image is not in minikube after the build"
