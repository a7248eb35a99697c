// The plugin's verbs with the kernel left out: the IPAM half of each verb runs
// for real against an in-memory store, the netlink half (veth, addresses,
// routes) is what the out-of-process check covers in a network namespace.
import type { WeirResult } from '../../src/cni/result.ts';
import { CheckFailedError, InvalidConfigError, NotAvailableError } from '../../src/errors.ts';
import { allocate, gc, release, usage } from '../../src/ipam/allocator.ts';
import { MemoryStore } from '../../src/ipam/memory-store.ts';
import { attachmentOf, rangesFor } from '../../src/plugin/attachment.ts';
import type { Verbs } from '../../src/plugin/invoke.ts';
import { GATEWAY4, GATEWAY6, hostVethName } from '../../src/plugin/names.ts';

export interface FakePlugin {
  verbs: Verbs;
  store: MemoryStore;
}

export function fakePlugin(): FakePlugin {
  const store = new MemoryStore();
  const verbs: Verbs = {
    async add(env, conf): Promise<WeirResult> {
      const record = allocate(store, rangesFor(conf), attachmentOf(conf, env));
      // The real ADD's shape: the host veth, then the pod's interface, which holds the addresses.
      return {
        interfaces: [{ name: hostVethName(env.containerId, env.ifname) }, { name: env.ifname, sandbox: env.netns }],
        ips: record.addresses.map((a) => ({ address: `${a}/${a.includes(':') ? 128 : 32}`, gateway: a.includes(':') ? GATEWAY6 : GATEWAY4, interface: 1 })),
        routes: conf.podCIDRs.map((c) => (c.family === 4 ? { dst: '0.0.0.0/0', gw: GATEWAY4 } : { dst: '::/0', gw: GATEWAY6 })),
        dns: conf.dns ?? {},
      };
    },
    async del(env, conf) {
      // DEL's store is the network's; the in-memory store stands for it.
      void conf;
      release(store, env.containerId, env.ifname);
    },
    async check(env, conf) {
      if (!conf.prevResult) throw new InvalidConfigError('prevResult: required for CHECK');
      if (!store.withLock(() => store.findByAttachment(env.containerId, env.ifname))) throw new CheckFailedError(`no IPAM record for ${env.containerId}`);
    },
    async status(conf) {
      const full = usage(store, rangesFor(conf)).filter((r) => r.free <= 0n);
      if (full.length > 0) throw new NotAvailableError(`no free addresses left in ${full.map((r) => r.range).join(', ')}`);
    },
    async gc(conf) {
      gc(store, conf.validAttachments ?? []);
    },
  };
  return { verbs, store };
}
