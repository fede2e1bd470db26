#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from the Go modules pinned in hack/cluster/go.mod:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm and kwok (fake nodes whose
# pods turn Running and Ready, and a default StorageClass whose claims kwok binds; no container runs).
#
#   hack/cluster.sh build        build the binaries, or reuse the cached ones; prints their folder
#   hack/cluster.sh up           build or reuse, start everything on free loopback ports, wait until the API
#                                server is ready and live and every node is Ready; then print exactly two lines:
#                                  export PATH=<binaries>:$PATH
#                                  export KUBECONFIG=<admin kubeconfig>
#                                so that  eval "$(hack/cluster.sh up)"  points kubectl, helm and the tests at it
#   hack/cluster.sh down [DIR]   stop the cluster whose state folder is DIR (default: the folder of
#                                $KUBECONFIG) and remove its data
#   hack/cluster.sh token NS SA  print a token of ServiceAccount NS/SA from the TokenRequest API
#   hack/cluster.sh compact      compact etcd's history at its current revision (old resourceVersions 410)
#
# Everything but those two lines goes to stderr. Settings (environment):
#   TYCHO_CLUSTER_CACHE  where built binaries are kept (default ${XDG_CACHE_HOME:-~/.cache}/tycho/cluster),
#                        one folder per hash of the pinned versions and this script's build recipe
#   TYCHO_CLUSTER_NODES  number of kwok nodes (default 2)
#   TYCHO_CLUSTER_DIR    the state folder to use for `up` (default: a new folder under ${TMPDIR:-/tmp})
#   TYCHO_CLUSTER_AUDIT  1 (default): the API server writes an audit log (Metadata level, JSON) to
#                        audit.log beside the kubeconfig; 0: no audit log
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/cluster"
# shellcheck source=cluster/versions.env
. "$mod/versions.env"
# Bump when the build recipe below changes, so that caches built by an older recipe are not reused.
recipe=2

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

cache_root() { echo "${TYCHO_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tycho/cluster}"; }

cache_key() {
  { cat "$mod/go.mod" "$mod/go.sum" "$mod/versions.env"; echo "recipe=$recipe"; go env GOVERSION GOARCH; } \
    | sha256sum | cut -c1-16
}

# Build (or reuse) the binaries; print their folder.
build() {
  command -v go >/dev/null || die "Go is required to build the control plane (go.mod pins Go $(sed -n 's/^go //p' "$mod/go.mod"))"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
  local root key bin
  root=$(cache_root)
  key=$(cache_key)
  bin="$root/$key/bin"
  mkdir -p "$root"
  exec 9>"$root/.lock"
  flock 9
  if [ -x "$bin/kube-apiserver" ] && [ -f "$bin/.complete" ]; then
    log "reusing $bin"
    echo "$bin"
    return
  fi
  local tmp start
  tmp=$(mktemp -d "$root/build.XXXXXX")
  start=$(date +%s)
  log "building Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION, kwok $KWOK_VERSION into $bin (first build on this machine: downloads modules and compiles for tens of minutes)"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  ld="$ld -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  (
    cd "$mod"
    go mod download
    go build -trimpath -ldflags "$ld" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
      helm.sh/helm/v4/cmd/helm sigs.k8s.io/kwok/cmd/kwok
    go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
    # kwok's stages (how fake nodes and pods move through their lifecycle) ship in its module source.
    local src
    src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    mkdir -p "$tmp/kwok-stages"
    cp "$src/kustomize/stage/node/fast/node-initialize.yaml" \
      "$src/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
      "$src/kustomize/stage/pod/fast/pod-ready.yaml" "$src/kustomize/stage/pod/fast/pod-complete.yaml" \
      "$src/kustomize/stage/pod/fast/pod-delete.yaml" "$src/kustomize/stage/volume/fast/pv-bind.yaml" \
      "$src/kustomize/stage/volume/fast/pv-delete.yaml" "$src/kustomize/stage/volume/fast/pvc-provision.yaml" \
      "$src/kustomize/stage/volume/fast/pvc-delete.yaml" "$tmp/kwok-stages/"
    # The default StorageClass whose claims kwok's volume stages provision and bind.
    cp "$src/kustomize/stage/volume/fast/storage-class.yaml" "$tmp/storage-class.yaml"
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

# Wait until "$@" succeeds, at most $1 seconds; $2 names what is awaited.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "gave up after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# Start a component in the background (its own session, so it outlives this script); remember its PID.
start() {
  local name=$1; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$dir/pids/$name"
}

alive() { kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

fail_up() {
  log "$1; the last lines of each log:"
  local f
  for f in "$dir"/logs/*.log; do
    printf '%s\n' "--- $f" >&2
    tail -n 15 "$f" >&2 || true
  done
  stop_all
  exit 1
}

certs() {
  local p=$dir/pki
  mkdir -p "$p"
  (
    cd "$p"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=tycho-test-ca"
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1\n' >server.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext -out apiserver.crt
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    # admin: system:masters; the components: their own identities, which the bootstrap RBAC roles name.
    client() {
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out "$1.crt"
    }
    client admin "/O=system:masters/CN=tycho-admin"
    client controller-manager "/CN=system:kube-controller-manager"
    client scheduler "/CN=system:kube-scheduler"
    client kwok "/O=system:masters/CN=kwok-controller"
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >/dev/null 2>&1 || die "openssl failed to make the certificates in $p"
}

kubeconfig() { # NAME USER
  local p=$dir/pki
  cat >"$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tycho-real
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $p/ca.crt
users:
- name: $2
  user:
    client-certificate: $p/$2.crt
    client-key: $p/$2.key
contexts:
- name: tycho-real
  context: {cluster: tycho-real, user: $2, namespace: default}
current-context: tycho-real
EOF
}

nodes_manifest() {
  local i
  for ((i = 0; i < ${TYCHO_CLUSTER_NODES:-2}; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "1000", ephemeral-storage: 1Ti}
  capacity: {cpu: "64", memory: 256Gi, pods: "1000", ephemeral-storage: 1Ti}
EOF
  done
}

up() {
  local bin
  bin=$(build)
  if [ -n "${TYCHO_CLUSTER_DIR:-}" ]; then
    dir=$TYCHO_CLUSTER_DIR
    mkdir -p "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tycho-cluster.XXXXXX")
  fi
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/logs" "$dir/pids" "$dir/etcd"
  echo "$bin" >"$dir/bin"
  local t0
  t0=$(date +%s)
  etcd_port=$(free_port); peer_port=$(free_port); apiserver_port=$(free_port)
  kcm_port=$(free_port); sched_port=$(free_port); kwok_port=$(free_port)
  certs
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kwok kwok
  local p=$dir/pki
  # The audit log is the real server's request log: who called what, and the answer's status code. The
  # control plane's own components are left out. TYCHO_CLUSTER_AUDIT=0 turns it off (benchmarks).
  local audit=()
  if [ "${TYCHO_CLUSTER_AUDIT:-1}" != 0 ]; then
    cat >"$dir/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-controller-manager, system:kube-scheduler, system:apiserver, kwok-controller]
- level: None
  userGroups: [system:serviceaccounts:kube-system, system:nodes]
- level: Metadata
EOF
    audit=(--audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log"
      --audit-log-format=json --audit-log-maxsize=0 --audit-log-mode=blocking)
  fi

  echo "http://127.0.0.1:$etcd_port" >"$dir/etcd-url"
  start etcd "$bin/etcd" --name=node0 --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="node0=http://127.0.0.1:$peer_port" --unsafe-no-fsync=true --log-level=warn \
    --listen-metrics-urls="" --auto-compaction-mode=periodic --auto-compaction-retention=1m
  wait_for 60 "etcd /readyz" curl -fsS "http://127.0.0.1:$etcd_port/readyz" || fail_up "etcd did not become ready"

  start kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$apiserver_port" \
    --cert-dir="$p" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/16 --authorization-mode=Node,RBAC --allow-privileged=true \
    --enable-priority-and-fairness=false --endpoint-reconciler-type=none --etcd-compaction-interval=1m \
    --storage-media-type=application/vnd.kubernetes.protobuf --watch-cache-sizes=secrets#0 "${audit[@]}"
  local curl_admin=(curl -fsS --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key")
  wait_for 120 "kube-apiserver /readyz" "${curl_admin[@]}" "https://127.0.0.1:$apiserver_port/readyz" \
    || fail_up "kube-apiserver did not become ready"
  wait_for 30 "kube-apiserver /livez" "${curl_admin[@]}" "https://127.0.0.1:$apiserver_port/livez" \
    || fail_up "kube-apiserver is not live"

  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --leader-elect=false \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --use-service-account-credentials=true --cluster-cidr=10.244.0.0/16 --allocate-node-cidrs=false \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --concurrent-gc-syncs=20 --kube-api-qps=200 --kube-api-burst=400
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$sched_port" --leader-elect=false \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
  local stages=() f
  for f in "$bin"/kwok-stages/*.yaml; do stages+=(--config="$f"); done
  start kwok "$bin/kwok" --kubeconfig="$dir/kwok.kubeconfig" --manage-all-nodes=true \
    --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 --node-ip=127.0.0.1 \
    --server-address="127.0.0.1:$kwok_port" "${stages[@]}"

  wait_for 90 "kube-controller-manager /healthz" curl -fsSk "https://127.0.0.1:$kcm_port/healthz" \
    || fail_up "kube-controller-manager did not become healthy"
  wait_for 90 "kube-scheduler /healthz" curl -fsSk "https://127.0.0.1:$sched_port/healthz" \
    || fail_up "kube-scheduler did not become healthy"
  wait_for 60 "kwok /healthz" curl -fsS "http://127.0.0.1:$kwok_port/healthz" \
    || fail_up "kwok did not become healthy"

  local kc=(env KUBECONFIG="$dir/admin.kubeconfig" "$bin/kubectl")
  nodes_manifest | "${kc[@]}" apply -f - >&2 || fail_up "could not create the nodes"
  "${kc[@]}" apply -f "$bin/storage-class.yaml" >&2 || fail_up "could not create the StorageClass"
  wait_for 120 "Ready nodes" "${kc[@]}" wait --for=condition=Ready node --all --timeout=5s \
    || fail_up "the nodes did not become Ready"
  # Bare Pods need the namespace's default ServiceAccount, which the controller-manager creates.
  wait_for 60 "the default ServiceAccount" "${kc[@]}" get serviceaccount default -n default \
    || fail_up "the controller-manager did not create the default ServiceAccount"
  local comp
  for comp in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    alive "$comp" || fail_up "$comp exited"
  done
  # Compact etcd's history now, so that a watch from an old resourceVersion gets 410 Gone at once rather
  # than after the first periodic compaction. Secrets bypass the watch cache (above), so for them the API
  # server asks etcd directly: the deterministic 410 the differential test checks.
  compact || fail_up "could not compact etcd"
  log "up in $(( $(date +%s) - t0 )) s: API server https://127.0.0.1:$apiserver_port, ${TYCHO_CLUSTER_NODES:-2} kwok nodes, state in $dir"
  echo "export PATH=$bin:\$PATH"
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

# Compact etcd at its current revision (physically), through etcd's JSON gateway. Uses $dir, or the folder
# of $KUBECONFIG.
compact() {
  local d=${dir:-$(dirname "${KUBECONFIG:?set KUBECONFIG or give the state folder}")}
  local url rev
  url=$(cat "$d/etcd-url")
  rev=$(curl -fsS -X POST "$url/v3/maintenance/status" -d '{}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])') || return 1
  curl -fsS -X POST "$url/v3/kv/compaction" -d "{\"revision\": \"$rev\", \"physical\": true}" >/dev/null || return 1
  log "compacted etcd at revision $rev"
}

stop_all() {
  local comp pid
  for comp in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$dir/pids/$comp" ] || continue
    pid=$(cat "$dir/pids/$comp")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for comp in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$dir/pids/$comp" ] || continue
    pid=$(cat "$dir/pids/$comp")
    local i
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/pids/$comp"
  done
}

down() {
  dir=${1:-}
  if [ -z "$dir" ]; then
    [ -n "${KUBECONFIG:-}" ] || die "down: give the state folder, or set KUBECONFIG to the cluster's admin kubeconfig"
    dir=$(dirname "$KUBECONFIG")
  fi
  [ -d "$dir/pids" ] || die "down: $dir is not a cluster state folder (no pids/)"
  stop_all
  rm -rf "$dir"
  log "stopped and removed $dir"
}

token() {
  local ns=${1:?namespace} sa=${2:?service account}
  kubectl create token "$sa" -n "$ns" --duration=24h
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) shift; down "$@" ;;
  token) shift; token "$@" ;;
  compact) compact ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2 ;;
esac
