#!/usr/bin/env bash
# Container registries on loopback for the tests of image ports (tests/registry_ports.rs), built from the Go
# modules pinned in hack/registry/go.mod:
#   crane     go-containerregistry's CLI: `crane registry serve` (a registry that asks for no credentials,
#             blobs in memory) and the client that pushes the tests' images (append, mutate, index append)
#   registry     the CNCF distribution registry, here with htpasswd (HTTP basic) or token (bearer) authentication
#   htpasswd     hack/registry/htpasswd: one bcrypt line of an htpasswd file, as the registry reads it
#   tokenserver  hack/registry/tokenserver: the registry's token service, issuing anonymous pull tokens as
#                public registries do (push tokens need credentials), and the registry's parent process
#
#   hack/registry/registry.sh build
#       build the binaries, or reuse the cached ones; prints their folder
#   hack/registry/registry.sh serve [--auth USER:PASSWORD] [--bearer] [--dir DIR] [--port PORT]
#       build or reuse, then serve on 127.0.0.1 (PORT, default a free one) in the foreground: the first line
#       on stdout is the address (127.0.0.1:PORT), printed before the server starts (poll /v2/ for it to
#       answer). The server replaces this script (exec), so stopping that process stops the registry.
#       Neither flag: `crane registry serve`, anonymous pull and push, no challenge.
#       --auth alone: the distribution registry, whose every request needs USER:PASSWORD (a Basic challenge
#       otherwise).
#       --bearer: the distribution registry with token authentication, under tokenserver (its token endpoint
#       on another free port, named as localhost: crane refuses a realm at a loopback IP literal that is not
#       the registry's own host): a Bearer challenge, anonymous pull tokens; push tokens need USER:PASSWORD of
#       --auth when given.
#       The distribution registry's config, htpasswd or JWKS file and storage go in DIR (default: a new folder
#       under ${TMPDIR:-/tmp}); tokenserver logs every token it issues on stderr.
#
# Everything but those lines goes to stderr. Settings (environment):
#   TYCHO_REGISTRY_CACHE  where built binaries are kept (default ${XDG_CACHE_HOME:-~/.cache}/tycho/registry),
#                         one folder per hash of go.mod, go.sum, the helper's source and this script's recipe
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Bump when the build recipe below changes, so that caches built by an older recipe are not reused.
recipe=1

log() { printf '[registry] %s\n' "$*" >&2; }
die() { printf '[registry] error: %s\n' "$*" >&2; exit 1; }

cache_root() { echo "${TYCHO_REGISTRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tycho/registry}"; }

cache_key() {
  { cat "$here/go.mod" "$here/go.sum" "$here/htpasswd/main.go" "$here/tokenserver/main.go"; echo "recipe=$recipe"
    go env GOVERSION GOARCH; } \
    | sha256sum | cut -c1-16
}

# Build (or reuse) the binaries; print their folder.
build() {
  command -v go >/dev/null || die "Go is required to build the registries (go.mod pins Go $(sed -n 's/^go //p' "$here/go.mod"))"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
  local root key bin
  root=$(cache_root)
  key=$(cache_key)
  bin="$root/$key/bin"
  mkdir -p "$root"
  exec 9>"$root/.lock"
  flock 9
  if [ -x "$bin/registry" ] && [ -f "$bin/.complete" ]; then
    log "reusing $bin"
    echo "$bin"
    return
  fi
  local tmp start
  tmp=$(mktemp -d "$root/build.XXXXXX")
  start=$(date +%s)
  log "building crane, the distribution registry, htpasswd and tokenserver into $bin (first build on this machine: downloads modules and compiles for a few minutes)"
  (
    cd "$here"
    go mod download
    go build -trimpath -ldflags "-s -w" -o "$tmp/" \
      github.com/google/go-containerregistry/cmd/crane \
      github.com/distribution/distribution/v3/cmd/registry \
      ./htpasswd ./tokenserver
  ) >&2
  touch "$tmp/.complete"
  mkdir -p "$root/$key"
  rm -rf "$bin"
  mv "$tmp" "$bin"
  log "built in $(( $(date +%s) - start )) s: $(du -sh "$bin" | cut -f1) in $bin"
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

serve() {
  local auth="" bearer="" dir="" port=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --auth) auth=${2:?--auth USER:PASSWORD}; shift 2 ;;
      --bearer) bearer=1; shift ;;
      --dir) dir=${2:?--dir DIR}; shift 2 ;;
      --port) port=${2:?--port PORT}; shift 2 ;;
      *) die "serve: unknown argument $1" ;;
    esac
  done
  local bin
  bin=$(build)
  [ -n "$port" ] || port=$(free_port)
  local addr="127.0.0.1:$port"
  if [ -z "$auth" ] && [ -z "$bearer" ]; then
    echo "$addr"
    exec "$bin/crane" registry serve --address "$addr"
  fi
  case "$auth" in ""|*:*) ;; *) die "serve: --auth takes USER:PASSWORD" ;; esac
  if [ -n "$dir" ]; then
    mkdir -p "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tycho-registry.XXXXXX")
  fi
  dir=$(cd "$dir" && pwd)
  local token_port="" auth_config
  if [ -n "$bearer" ]; then
    token_port=$(free_port)
    auth_config="  token:
    realm: http://localhost:$token_port/token
    service: tycho-test-registry
    issuer: tycho-test-tokens
    jwks: $dir/jwks.json"
  else
    "$bin/htpasswd" "${auth%%:*}" "${auth#*:}" >"$dir/htpasswd"
    auth_config="  htpasswd:
    realm: tycho-test
    path: $dir/htpasswd"
  fi
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
  secret: tycho-test-$port
auth:
$auth_config
EOF
  echo "$addr"
  # No OpenTelemetry exporter: nothing listens for one here.
  export OTEL_TRACES_EXPORTER=none
  if [ -n "$bearer" ]; then
    exec "$bin/tokenserver" -addr "127.0.0.1:$token_port" -jwks "$dir/jwks.json" -issuer tycho-test-tokens \
      -service tycho-test-registry ${auth:+-push-auth "$auth"} -- "$bin/registry" serve "$dir/config.yml"
  fi
  exec "$bin/registry" serve "$dir/config.yml"
}

case "${1:-}" in
  build) build ;;
  serve) shift; serve "$@" ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2 ;;
esac
