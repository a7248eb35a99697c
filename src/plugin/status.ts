// CNI STATUS: ready to accept ADDs when the IPAM store is usable and each pod
// range still has a free address. Otherwise code 50, so the runtime holds
// pods back instead of failing them one by one.
import type { WeirNetConf } from '../cni/config.ts';
import { isWeirError, NotAvailableError } from '../errors.ts';
import { usage } from '../ipam/allocator.ts';
import { rangesFor, storeFor } from './attachment.ts';

export function cmdStatus(conf: WeirNetConf): void {
  let ranges: ReturnType<typeof usage>;
  try {
    // usage() takes the store's lock: it proves the data directory can be
    // created, opened and locked, which is what ADD needs of it.
    ranges = usage(storeFor(conf), rangesFor(conf));
  } catch (e) {
    throw new NotAvailableError(`IPAM store ${conf.dataDir} is not usable: ${isWeirError(e) ? e.message : String(e)}`);
  }
  const full = ranges.filter((r) => r.free <= 0n);
  if (full.length > 0) throw new NotAvailableError(`no free addresses left in ${full.map((r) => r.range).join(', ')}`);
}
