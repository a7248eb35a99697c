// The CNI protocol layer: environment, configuration, versions, results and
// errors, all pure. The plugin's entry point wires these to process.env,
// stdin and stdout.
export { CNI_COMMANDS, type CniCommand, isCniCommand } from './command.ts';
export { DEFAULT_DATA_DIR, type GcAttachment, parseNetConf, type WeirNetConf } from './config.ts';
export {
  type CniArgs,
  type CniEnv,
  type CniEnvSource,
  ifnameProblem,
  isDns1123Label,
  isDns1123Subdomain,
  isValidContainerId,
  isValidIfname,
  type K8sPodArgs,
  MAX_CONTAINER_ID_LENGTH,
  MAX_IFNAME_BYTES,
  parseCniArgs,
  parseCniEnv,
  REQUIRED_ENV,
  validateContainerId,
  validateIfname,
} from './env.ts';
export { type CniErrorJson, formatError } from './errors-json.ts';
export {
  addressBits,
  type Cidr,
  cidrContains,
  formatCidr,
  formatIp,
  hasHostBits,
  type IpBytes,
  type IpFamily,
  maskBytes,
  networkOf,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
} from './ip.ts';
export {
  type CniResultJson,
  emptyResult,
  formatResult,
  parseDns,
  parsePrevResult,
  type ResultDns,
  type ResultInterface,
  type ResultIp,
  type ResultRoute,
  type WeirResult,
} from './result.ts';
export {
  assertCommandAllowed,
  COMMAND_MIN_VERSION,
  compareVersions,
  highestSupported,
  isSupportedVersion,
  isValidVersion,
  LATEST_VERSION,
  negotiateVersion,
  parseVersion,
  parseVersionRequest,
  SUPPORTED_VERSIONS,
  type SupportedVersion,
  type VersionInfo,
  versionInfo,
} from './version.ts';
