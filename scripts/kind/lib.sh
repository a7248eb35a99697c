# shellcheck shell=bash
# The environment every kind script shares on a machine without a Docker
# engine: podman (CNI backend, runc, cgroupfs) with its own configuration and
# image store, and a network namespace that holds the whole cluster with no
# route out. Sourced by scripts/kind-up.sh, kind-down.sh, e2e-kind.sh,
# scripts/kind/images and scripts/conformance; sets nothing global on the machine.
#
#   WEIR_CACHE        build cache (default ~/.cache/weir): tools, images, podman's image store
#   KIND_NETNS        the namespace the cluster lives in (default weir-kind)
#   KIND_RUN          state of a running cluster (default /run/weir-kind)

kind_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WEIR_CACHE="${WEIR_CACHE:-$HOME/.cache/weir}"
KIND_NETNS="${KIND_NETNS:-weir-kind}"
KIND_RUN="${KIND_RUN:-/run/weir-kind}"
# Pins: kind itself (built from the Go module proxy) and the Kubernetes release
# of scripts/k8s/go.mod, which names the node image.
KIND_VERSION=v0.33.0
K8S_VERSION=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$kind_repo/scripts/k8s/go.mod")
KIND_NODE_IMAGE_LOCAL="localhost/weir/kind-node:$K8S_VERSION"
export WEIR_CACHE KIND_NETNS KIND_RUN KIND_VERSION K8S_VERSION KIND_NODE_IMAGE_LOCAL

kind_say() { printf '%s: %s\n' "${kind_prog:-kind}" "$*" >&2; }
kind_die() { kind_say "$*"; exit 1; }

# The container engine: Docker where it runs (kind's default provider, as a
# user has it), else podman, which this machine has.
kind_provider() {
  if [ -n "${KIND_EXPERIMENTAL_PROVIDER:-}" ]; then echo "$KIND_EXPERIMENTAL_PROVIDER"; return; fi
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; else echo podman; fi
}

# podman's files for weir's clusters, apart from the machine's default store:
# the image store is a cache (node and component images survive kind-down);
# run state, CNI network configs and events live under $KIND_RUN and go with
# the cluster.
kind_podman_env() {
  local conf="$KIND_RUN/containers"
  mkdir -p "$conf" "$KIND_RUN/cni" "$KIND_RUN/tmp" "$KIND_RUN/empty-modules" "$WEIR_CACHE/podman"
  # rlimits above the hard limits fail without CAP_SYS_RESOURCE, and kind's
  # own `podman run` asks for none, so podman's defaults must fit under them.
  cat >"$conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$KIND_RUN/events.log"
runtime = "runc"
tmp_dir = "$KIND_RUN/tmp"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "$KIND_RUN/cni"
CONF
  cat >"$conf/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$WEIR_CACHE/podman/storage"
runroot = "$KIND_RUN/storage"
CONF
  export CONTAINERS_CONF="$conf/containers.conf" CONTAINERS_STORAGE_CONF="$conf/storage.conf"
  # kind always mounts /lib/modules, which this machine does not have: the
  # wrapper maps that one volume to an empty folder.
  export PATH="$kind_repo/scripts/kind/bin:$PATH" WEIR_KIND_EMPTY_MODULES="$KIND_RUN/empty-modules"
  export KUBECONFIG="$KIND_RUN/kubeconfig"
}

# The cluster's namespace: loopback only. podman's bridge for kind is made
# inside it, so nothing of the cluster is configured in the root namespace.
kind_netns_up() {
  if [ ! -e "/run/netns/$KIND_NETNS" ]; then
    ip netns add "$KIND_NETNS"
  fi
  ip -n "$KIND_NETNS" link set lo up
  ip netns exec "$KIND_NETNS" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv4.ip_forward=1
}

# Runs a command in the cluster's namespace. nsenter, not `ip netns exec`:
# the latter's private mount namespace per call breaks podman's tracking of
# its overlay mounts.
in_kind_ns() { nsenter --net="/run/netns/$KIND_NETNS" "$@"; }

# kind and kubectl as the scripts call them: on podman, inside the cluster's
# namespace with podman's own files; on Docker, as the user has them.
kind_setup() {
  KIND_PROVIDER=$(kind_provider)
  export KIND_PROVIDER
  if [ "$KIND_PROVIDER" = podman ]; then
    kind_podman_env
    export KIND_EXPERIMENTAL_PROVIDER=podman
    KIND_BIN="$WEIR_CACHE/bin/kind"
    KUBECTL_BIN="$("$kind_repo/scripts/k8s/build" --print-dir)/kubectl"
  else
    KIND_BIN=$(command -v kind || true)
    KUBECTL_BIN=$(command -v kubectl || true)
  fi
}
kind_run() {
  if [ "$KIND_PROVIDER" = podman ]; then in_kind_ns "$KIND_BIN" "$@"; else "$KIND_BIN" "$@"; fi
}
kind_kubectl() {
  if [ "$KIND_PROVIDER" = podman ]; then in_kind_ns "$KUBECTL_BIN" "$@"; else "$KUBECTL_BIN" "$@"; fi
}
