#!/usr/bin/env bash
# Creates a kind cluster running weir: the cluster from kind-config.yaml (one
# control plane, two workers, no default CNI), weir's image built and loaded
# into it, deploy/weir.yaml applied, then waits until every node is Ready and
# the weir DaemonSet is rolled out. Idempotent: an existing cluster of the
# same name is reused.
#
#   scripts/kind-up.sh
#
# Environment:
#   KIND_CLUSTER     cluster name (default weir)
#   KIND_CONFIG      kind config (default kind-config.yaml;
#                    kind-config-dualstack.yaml for dual-stack)
#   KIND_NODE_IMAGE  override the node image pinned in the config
#
# Needs: docker (a running engine), kind v0.33.0 or newer, kubectl. See docs/kind.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER:-weir}"
config="${KIND_CONFIG:-kind-config.yaml}"
manifest=deploy/weir.yaml

say() { printf 'kind-up: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}
need docker "install Docker Engine (https://docs.docker.com/engine/install/)"
need kind "install kind v0.33.0 or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation; with Go: go install sigs.k8s.io/kind@v0.33.0)"
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
docker info >/dev/null 2>&1 || die "docker cannot reach its engine (is the daemon running, and may this user use it?)"
[ -f "$config" ] || die "no kind config at $config"
[ -f "$manifest" ] || die "no $manifest: run scripts/gen-manifests"

# The image the DaemonSet names (weir:VERSION) is the one built and loaded,
# so the manifest and the image cannot disagree.
image=$(awk '$1 == "image:" && $2 ~ /^weir:/ { print $2; exit }' "$manifest")
[ -n "$image" ] || die "$manifest names no weir:VERSION image"
version="${image#weir:}"

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  say "cluster $cluster exists; reusing it"
else
  say "creating cluster $cluster from $config"
  create=(kind create cluster --name "$cluster" --config "$config")
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    create+=(--image "$KIND_NODE_IMAGE")
  fi
  "${create[@]}"
fi
# (Re)write the cluster's kubeconfig entry and make it the current context.
kind export kubeconfig --name "$cluster"
ctx=(--context "kind-$cluster")

say "building $image"
build=(docker build -t "$image" --build-arg "VERSION=$version")
if revision=$(git rev-parse HEAD 2>/dev/null); then
  build+=(--build-arg "REVISION=$revision")
fi
if source_url=$(git remote get-url origin 2>/dev/null); then
  build+=(--build-arg "SOURCE_URL=$source_url")
fi
"${build[@]}" .

say "loading $image into $cluster"
kind load docker-image "$image" --name "$cluster"

say "applying $manifest"
existed=$(kubectl "${ctx[@]}" -n kube-system get ds/weir --ignore-not-found -o name)
kubectl "${ctx[@]}" apply -f "$manifest"
if [ -n "$existed" ]; then
  # A rebuilt image under the same tag: restart the pods so they run it.
  kubectl "${ctx[@]}" -n kube-system rollout restart ds/weir >/dev/null
fi

say "waiting for the nodes (NotReady until weir has written the CNI config)"
kubectl "${ctx[@]}" wait --for=condition=Ready nodes --all --timeout=180s
kubectl "${ctx[@]}" -n kube-system rollout status ds/weir --timeout=180s
kubectl "${ctx[@]}" get nodes -o wide
say "ready: kubectl context kind-$cluster; scripts/e2e-kind.sh runs the policy demo"
