#!/usr/bin/env bash
# Deletes the kind cluster scripts/kind-up.sh made (KIND_CLUSTER, default
# weir), and with it everything in it. Succeeds when there is no such cluster.
#
#   scripts/kind-down.sh
set -euo pipefail
cluster="${KIND_CLUSTER:-weir}"
command -v kind >/dev/null 2>&1 || { echo "kind-down: kind is not installed" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind delete cluster --name "$cluster"
else
  echo "kind-down: no kind cluster named $cluster" >&2
fi
