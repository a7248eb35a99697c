// nftables as data, applied atomically: types, Transaction (pure), the
// libnftables backend (effects) and the in-memory FakeNft for unit tests.
export * from './types.ts';
export { NftError, isNftError, isNftNotFound, isNftExists, isNftBusy, isNftInvalid, errnoFromNftMessage, ENFILE, type NftErrorInfo } from './errors.ts';
export { Transaction, nft, renderObject, renderElements, elementText, canonicalFlags, type Step, type ScriptLine, type Compiled } from './transaction.ts';
export {
  LibNftables,
  LIBNFTABLES,
  NFT_CTX_OUTPUT_HANDLE,
  NFT_CTX_OUTPUT_JSON,
  NFT_CTX_OUTPUT_STATELESS,
  type LibNftablesOptions,
  type RunOptions,
} from './libnftables.ts';
export type { Nft, NftJson } from './backend.ts';
export { FakeNft, type FakeRule, type FakeElement } from './fake.ts';
export { NFT_KEYWORDS, NAME_RE, COMMENT_MAX_BYTES, checkName, checkComment, checkRuleText, checkKeyPart } from './validate.ts';
