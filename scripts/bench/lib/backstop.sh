# shellcheck shell=bash
# The backstop of the root-run benchmark wrappers (scripts/bench-policy,
# bench-agent, bench-cni), for when the Node side dies without its own
# cleanup (e.g. SIGKILL): stop what still runs inside the run's namespaces
# (by pid), then remove them and the run's temp dirs. The run's namespaces
# and temp dirs are named after WEIR_BENCH_TAG, which the wrapper exports and
# the Node side reads (scripts/bench/lib/host.ts, benchTag).
#
#   export WEIR_BENCH_TAG="wbpol$$"
#   . scripts/bench/lib/backstop.sh
#   trap 'bench_backstop bench-policy TERM' EXIT
bench_backstop() {
  local name=$1 signal=$2 n pids
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$WEIR_BENCH_TAG-"); do
    pids=$(ip netns pids "$n" 2>/dev/null)
    if [ -n "$pids" ]; then
      echo "$name: stopping processes left in $n: $pids" >&2
      echo "$pids" | xargs kill "-$signal" 2>/dev/null
      sleep 0.5
    fi
    echo "$name: removing leftover netns $n" >&2
    ip netns del "$n"
  done
  rm -rf /tmp/"$WEIR_BENCH_TAG".*
}
