// The interface every nftables backend offers (LibNftables over koffi, and
// FakeNft for tests), apart from any backend so that the policy engine can
// depend on it without loading FFI.
import type { Transaction } from './transaction.ts';
import type { Family } from './types.ts';

/** What every nftables backend offers; FakeNft implements the same. */
export interface Nft {
  /** Applies the transaction atomically; throws NftError (nothing applied) on any failure. */
  run(tx: Transaction): void;
  /** Validates the transaction against the current ruleset without applying it. */
  check(tx: Transaction): void;
  /** `list table FAMILY NAME` as text; NftError with errno ENOENT when it does not exist. */
  list(family: Family, table: string): string;
  /** Releases what the backend holds (LibNftables: its context and socket). Idempotent. */
  close(): void;
  /** The same as nft's JSON (`nft -j list table`), parsed. */
  listJson?(family: Family, table: string): NftJson;
}

/** `nft -j` output: `{ nftables: [ { metainfo: ... }, { table: ... }, { chain: ... }, ... ] }`. */
export interface NftJson {
  nftables: Record<string, unknown>[];
}
