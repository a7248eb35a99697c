// Global setup of the tiers that drive the kernel, podman or the cluster:
// they fail at once, with one line saying why, when not run as root,
// instead of skipping their cases and passing without testing anything.
export default function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('this tier needs root (network namespaces, veth, nftables, podman): run it as root, or `npm test` for the unit tier');
  }
}
