#!/usr/bin/env bash
# Creates a kind cluster running weir: the cluster from kind-config.yaml (one
# control plane, two workers, no default CNI), weir's image built and loaded
# into it, deploy/weir.yaml applied, then waits until every node is Ready and
# the weir DaemonSet is rolled out. Idempotent: an existing cluster of the
# same name is reused.
#
#   scripts/kind-up.sh
#
# Two providers, as kind has them:
#   - Docker, where its engine runs: kind's published node image (pinned in
#     the config), `docker build`, `kind load docker-image`;
#   - podman otherwise (or KIND_EXPERIMENTAL_PROVIDER=podman), as on a machine
#     with no Docker engine and no registry: kind, the node image and every
#     image the cluster runs are built here first (scripts/kind/tools,
#     scripts/kind/images; cached under ~/.cache/weir), and the whole cluster
#     lives inside a network namespace of its own with no route out
#     (scripts/kind/lib.sh). kubectl then runs inside that namespace:
#     `scripts/kind/kubectl ...`.
#
# Environment:
#   KIND_CLUSTER     cluster name (default weir)
#   KIND_CONFIG      kind config (default kind-config.yaml;
#                    kind-config-dualstack.yaml for dual-stack)
#   KIND_NODE_IMAGE  override the node image (podman: the one built here)
#
# Needs: docker (a running engine), kind v0.33.0 or newer and kubectl; or
# podman 4.3 or newer, debootstrap and Go. See docs/kind.md.
set -euo pipefail
cd "$(dirname "$0")/.."
kind_prog=kind-up
# shellcheck source=scripts/kind/lib.sh
. scripts/kind/lib.sh

cluster="${KIND_CLUSTER:-weir}"
config="${KIND_CONFIG:-kind-config.yaml}"
manifest=deploy/weir.yaml
t0=$SECONDS

need() {
  command -v "$1" >/dev/null 2>&1 || kind_die "$1 is not installed: $2"
}
[ -f "$config" ] || kind_die "no kind config at $config"
[ -f "$manifest" ] || kind_die "no $manifest: run scripts/gen-manifests"
# The image the DaemonSet names (weir:VERSION) is the one built and loaded,
# so the manifest and the image cannot disagree.
image=$(awk '$1 == "image:" && $2 ~ /^weir:/ { print $2; exit }' "$manifest")
[ -n "$image" ] || kind_die "$manifest names no weir:VERSION image"
version="${image#weir:}"

kind_setup
if [ "$KIND_PROVIDER" = podman ]; then
  [ "$(id -u)" -eq 0 ] || kind_die "the podman provider here needs root (a network namespace for the cluster)"
  need podman "apt-get install podman (scripts/setup does)"
  need debootstrap "apt-get install debootstrap (scripts/setup does)"
  kind_say "building kind, the Kubernetes binaries and the node image (cached after the first run)"
  scripts/kind/tools >/dev/null
  scripts/k8s/build --node >/dev/null
  node_image="${KIND_NODE_IMAGE:-$(scripts/kind/images)}"
  kind_netns_up
else
  need docker "install Docker Engine (https://docs.docker.com/engine/install/)"
  need kind "install kind v0.33.0 or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation; with Go: go install sigs.k8s.io/kind@v0.33.0)"
  need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
  docker info >/dev/null 2>&1 || kind_die "docker cannot reach its engine (is the daemon running, and may this user use it?)"
  node_image="${KIND_NODE_IMAGE:-}"
fi

if kind_run get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind_say "cluster $cluster exists; reusing it"
else
  kind_say "creating cluster $cluster from $config ($KIND_PROVIDER)"
  create=(create cluster --name "$cluster" --config "$config" --wait 0s)
  if [ -n "$node_image" ]; then
    create+=(--image "$node_image")
  fi
  kind_run "${create[@]}"
fi
# (Re)write the cluster's kubeconfig entry and make it the current context.
kind_run export kubeconfig --name "$cluster" 2>/dev/null
ctx=(--context "kind-$cluster")

kind_say "building $image"
if [ "$KIND_PROVIDER" = podman ]; then
  archive=$(scripts/kind/weir-image --tag "$image")
  kind_say "loading $image into $cluster"
  kind_run load image-archive "$archive" --name "$cluster"
else
  build=(docker build -t "$image" --build-arg "VERSION=$version")
  if revision=$(git rev-parse HEAD 2>/dev/null); then
    build+=(--build-arg "REVISION=$revision")
  fi
  if source_url=$(git remote get-url origin 2>/dev/null); then
    build+=(--build-arg "SOURCE_URL=$source_url")
  fi
  "${build[@]}" .
  kind_say "loading $image into $cluster"
  kind_run load docker-image "$image" --name "$cluster"
fi

# The agent reaches the API server at its own address rather than through
# the kubernetes Service (deploy/parts/40-daemonset.yaml says why): the
# address and port the API server advertises, as its EndpointSlice lists them.
endpoint=$(kind_kubectl "${ctx[@]}" -n default get endpointslices -l kubernetes.io/service-name=kubernetes \
  -o jsonpath='{.items[0].endpoints[0].addresses[0]} {.items[0].ports[0].port}')
read -r api_host api_port <<<"$endpoint"
if [ -n "${api_host:-}" ] && [ -n "${api_port:-}" ]; then
  kind_say "weir-agent reaches the API server at $api_host:$api_port"
  kind_kubectl "${ctx[@]}" -n kube-system create configmap weir-api-endpoint \
    --from-literal=host="$api_host" --from-literal=port="$api_port" --dry-run=client -o yaml |
    kind_kubectl "${ctx[@]}" apply -f - >/dev/null
fi

kind_say "applying $manifest"
existed=$(kind_kubectl "${ctx[@]}" -n kube-system get ds/weir --ignore-not-found -o name)
kind_kubectl "${ctx[@]}" apply -f - <"$manifest"
if [ -n "$existed" ]; then
  # A rebuilt image under the same tag: restart the pods so they run it.
  kind_kubectl "${ctx[@]}" -n kube-system rollout restart ds/weir >/dev/null
fi

kind_say "waiting for the nodes (NotReady until weir has written the CNI config)"
kind_kubectl "${ctx[@]}" wait --for=condition=Ready nodes --all --timeout=300s
kind_kubectl "${ctx[@]}" -n kube-system rollout status ds/weir --timeout=300s
kind_kubectl "${ctx[@]}" -n kube-system rollout status deploy/coredns --timeout=300s
kind_kubectl "${ctx[@]}" get nodes -o wide
kind_say "ready in $((SECONDS - t0)) s: kubectl context kind-$cluster; scripts/e2e-kind.sh runs the policy demo"
