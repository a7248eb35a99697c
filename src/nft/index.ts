// nftables as data, applied atomically: types, Transaction (pure), the
// libnftables backend (effects) and the in-memory FakeNft for unit tests.

export type { Nft, NftJson } from './backend.ts';
export { ENFILE, errnoFromNftMessage, isNftBusy, isNftError, isNftExists, isNftInvalid, isNftNotFound, NftError, type NftErrorInfo } from './errors.ts';
export { type FakeElement, FakeNft, type FakeRule } from './fake.ts';
export {
  LIBNFTABLES,
  LibNftables,
  type LibNftablesOptions,
  NFT_CTX_OUTPUT_HANDLE,
  NFT_CTX_OUTPUT_JSON,
  NFT_CTX_OUTPUT_STATELESS,
  type RunOptions,
} from './libnftables.ts';
export { type Compiled, canonicalFlags, elementText, nft, renderElements, renderObject, type ScriptLine, type Step, Transaction } from './transaction.ts';
export * from './types.ts';
export { COMMENT_MAX_BYTES, checkComment, checkKeyPart, checkName, checkRuleText, NAME_RE, NFT_KEYWORDS } from './validate.ts';
