#!/usr/bin/env bash
# weir's end-to-end check on a kind cluster made by scripts/kind-up.sh: pod
# pairs on the same node and across nodes, then the NetworkPolicy demo, step
# by step, asserting who reaches whom at each step. One PASS or FAIL line per
# assertion; exits 1 on any FAIL. Cleans up after itself (also on Ctrl-C).
#
#   scripts/e2e-kind.sh
#
# The demo: namespace netpol-demo with web (2 replicas, app=web, port 80) and
# db (app=db, port 5432), each behind a Service, and a client pod in default.
#   0. no policy: everything connects
#   1. default-deny-ingress in netpol-demo: the client is cut off from web
#   2. web-allow-frontend (namespaces labelled purpose=frontend may reach
#      app=web on TCP 80), and default labelled so: the client reaches web
#   3. db-policy (only app=web reaches app=db on TCP 5432): web reaches db,
#      the client does not
# Servers are agnhost netexec (an HTTP server on any port, with curl inside);
# the client is the curl image. Every probe is `curl --max-time`.
#
# Environment: KIND_CLUSTER (default weir), PROBE_TIMEOUT (seconds to wait for
# a policy change to show, default 30). With podman (no Docker engine), kubectl
# runs inside the cluster's network namespace (scripts/kind/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER:-weir}"
probe_timeout="${PROBE_TIMEOUT:-30}"
ns=netpol-demo
curl_image=curlimages/curl:8.11.1
# The agnhost of the Kubernetes release the project pins (test/utils/image).
agnhost_image=registry.k8s.io/e2e-test-images/agnhost:2.59
pair_ns=weir-e2e-pairs

kind_prog=e2e-kind
# shellcheck source=scripts/kind/lib.sh
. scripts/kind/lib.sh
kind_setup
if [ -z "$KUBECTL_BIN" ] || [ ! -x "$KUBECTL_BIN" ]; then echo "e2e-kind: kubectl is not installed" >&2; exit 1; fi
k() { kind_kubectl --context "kind-$cluster" "$@"; }
k get nodes >/dev/null || { echo "e2e-kind: no cluster kind-$cluster; run scripts/kind-up.sh first" >&2; exit 1; }

passes=0
fails=0
say() { printf '== %s\n' "$*"; }

cleanup() {
  set +e
  k delete namespace "$ns" "$pair_ns" --ignore-not-found --wait=false >/dev/null 2>&1
  k delete pod client --ignore-not-found --wait=false >/dev/null 2>&1
  k label namespace default purpose- >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
# Namespaces of an earlier run must be gone before they are made again.
k wait --for=delete "namespace/$ns" "namespace/$pair_ns" --timeout=120s >/dev/null 2>&1 || true
k wait --for=delete pod/client --timeout=60s >/dev/null 2>&1 || true

# probe NAMESPACE POD URL: does POD get an HTTP answer from URL?
probe() {
  k exec -n "$1" "$2" -- curl -sS -o /dev/null --connect-timeout 3 --max-time 5 "$3" >/dev/null 2>&1
}

# expect allow|deny WHAT NAMESPACE POD URL: polls until the outcome is the
# expected one (a policy change takes effect asynchronously), for at most
# $probe_timeout seconds; then one PASS or FAIL line.
expect() {
  local want=$1 what=$2 pns=$3 pod=$4 url=$5 got deadline
  deadline=$((SECONDS + probe_timeout))
  while :; do
    if probe "$pns" "$pod" "$url"; then got=allow; else got=deny; fi
    [ "$got" = "$want" ] && break
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 1
  done
  if [ "$got" = "$want" ]; then
    printf 'PASS  %-58s %s\n' "$what" "$got"
    passes=$((passes + 1))
  else
    printf 'FAIL  %-58s expected %s, got %s (%s/%s -> %s)\n' "$what" "$want" "$got" "$pns" "$pod" "$url"
    fails=$((fails + 1))
  fi
}

# Every address (IPv4, and IPv6 on a dual-stack cluster) of a pod, URL-ready.
pod_hosts() {
  local ip
  for ip in $(k get pod -n "$1" "$2" -o jsonpath='{.status.podIPs[*].ip}'); do
    case "$ip" in
      *:*) printf '[%s]\n' "$ip" ;;
      *) printf '%s\n' "$ip" ;;
    esac
  done
}

# ---- pod pairs: same node and across nodes, before any policy ----
mapfile -t workers < <(k get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
if [ "${#workers[@]}" -lt 2 ]; then
  echo "e2e-kind: need two worker nodes, found ${#workers[@]} (kind-config.yaml makes two)" >&2
  exit 1
fi
say "pod pairs on ${workers[0]} and ${workers[1]}"
k create namespace "$pair_ns" >/dev/null
for i in 0 1; do
  k run -n "$pair_ns" "server-$i" --image="$agnhost_image" --restart=Never \
    --overrides="{\"apiVersion\":\"v1\",\"spec\":{\"nodeName\":\"${workers[$i]}\"}}" -- netexec --http-port=8080 >/dev/null
done
k run -n "$pair_ns" client-0 --image="$curl_image" --restart=Never \
  --overrides="{\"apiVersion\":\"v1\",\"spec\":{\"nodeName\":\"${workers[0]}\"}}" --command -- sleep 3600 >/dev/null
k wait -n "$pair_ns" --for=condition=Ready pod --all --timeout=180s >/dev/null
for host in $(pod_hosts "$pair_ns" server-0); do
  expect allow "same node: client-0 -> server-0 $host" "$pair_ns" client-0 "http://$host:8080/hostname"
done
for host in $(pod_hosts "$pair_ns" server-1); do
  expect allow "cross node: client-0 -> server-1 $host" "$pair_ns" client-0 "http://$host:8080/hostname"
done
k delete namespace "$pair_ns" --wait=false >/dev/null

# ---- the demo workload ----
say "demo workload in $ns"
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $ns
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      # One replica per worker where possible, so policy is checked on both.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels: {app: web}
      containers:
        - name: web
          image: $agnhost_image
          args: [netexec, --http-port=80]
          ports:
            - containerPort: 80
          readinessProbe:
            tcpSocket: {port: 80}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: $ns
spec:
  selector: {app: web}
  ports:
    - port: 80
      protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  namespace: $ns
spec:
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: db
          # Speaks HTTP on the database's port, so that curl can probe it.
          image: $agnhost_image
          args: [netexec, --http-port=5432]
          ports:
            - containerPort: 5432
          readinessProbe:
            tcpSocket: {port: 5432}
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: $ns
spec:
  selector: {app: db}
  ports:
    - port: 5432
      protocol: TCP
EOF
k run client --image="$curl_image" --restart=Never --command -- sleep 3600 >/dev/null
k -n "$ns" rollout status deploy/web --timeout=180s >/dev/null
k -n "$ns" rollout status deploy/db --timeout=180s >/dev/null
k wait --for=condition=Ready pod/client --timeout=180s >/dev/null
mapfile -t webs < <(k get pods -n "$ns" -l app=web -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
web_url="http://web.$ns.svc.cluster.local/hostname"
db_url="http://db.$ns.svc.cluster.local:5432/hostname"

# The whole matrix for one step: client -> web (Service, and each replica by
# address), client -> db, each web replica -> db.
check() {
  local client_web=$1 client_db=$2 web_db=$3 w host
  expect "$client_web" "client -> web (Service)" default client "$web_url"
  for w in "${webs[@]}"; do
    for host in $(pod_hosts "$ns" "$w"); do
      expect "$client_web" "client -> $w $host" default client "http://$host/hostname"
    done
  done
  expect "$client_db" "client -> db (Service)" default client "$db_url"
  for w in "${webs[@]}"; do
    expect "$web_db" "$w -> db (Service)" "$ns" "$w" "$db_url"
  done
}

say "step 0: no policy: everything connects"
check allow allow allow

say "step 1: default-deny-ingress: the client is cut off from web"
k apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: $ns
spec:
  podSelector: {}
  policyTypes: [Ingress]
EOF
check deny deny deny

say "step 2: web-allow-frontend: namespaces labelled purpose=frontend reach app=web on TCP 80"
k apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-allow-frontend
  namespace: $ns
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {purpose: frontend}
      ports:
        - protocol: TCP
          port: 80
EOF
# Not yet: default is not labelled.
expect deny "client -> web (Service), default not yet labelled" default client "$web_url"
k label namespace default purpose=frontend --overwrite >/dev/null
check allow deny deny

say "step 3: db-policy: only app=web reaches app=db on TCP 5432"
k apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-policy
  namespace: $ns
spec:
  podSelector:
    matchLabels: {app: db}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels: {app: web}
      ports:
        - protocol: TCP
          port: 5432
EOF
check allow deny allow

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
