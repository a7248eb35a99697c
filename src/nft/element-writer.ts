// The seam for element-only ruleset changes: the engine hands set and map
// element adds and deletes to an ElementWriter, which applies them as one
// atomic batch without going through libnftables (see netlink-elements.ts).
import type { NftMap, NftSet } from './types.ts';

export interface ElementChange {
  readonly verb: 'add' | 'delete';
  readonly set: NftSet | NftMap;
  /** One string per concatenation field, e.g. `['10.244.1.5']` or `['10.244.1.5', 'tcp', '8080']`. */
  readonly key: readonly string[];
  /** For verdict maps, e.g. `goto prof_abc_in`; deletes need none. */
  readonly value?: string;
}

export interface ElementWriter {
  /** Whether apply() can take changes of this set or map; the rest must go through libnftables. */
  canWrite(def: NftSet | NftMap): boolean;
  /** Applies every change or none; throws NftError on failure. */
  apply(changes: readonly ElementChange[]): void;
  close(): void;
}
