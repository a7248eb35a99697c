// What every plugin invocation must satisfy, whatever its input (CNI spec
// 1.1.0 sections 2 and 5): exit 0 with ADD's result, VERSION's answer or
// nothing, or exit 1 with one error JSON whose code says what went wrong.
// Code 199 is weir's "internal" catch-all for an untyped exception: for bad
// input that is a finding, since every refusal of input has its own typed
// error.
import { isIP } from 'node:net';
import { CniCode } from '../../src/errors.ts';
import type { Outcome } from '../../src/plugin/invoke.ts';

/** The codes a refusal of bad input may carry; 199 (internal) is not one. */
const INPUT_CODES: ReadonlySet<number> = new Set(Object.values(CniCode).filter((c) => c !== CniCode.Internal));

export class FuzzFinding extends Error {
  override name = 'FuzzFinding';
}

function oneJsonLine(o: Outcome, what: string): Record<string, unknown> {
  if (!o.stdout.endsWith('\n') || o.stdout.indexOf('\n') !== o.stdout.length - 1)
    throw new FuzzFinding(`${what}: output is not one JSON line: ${o.stdout.slice(0, 200)}`);
  const v = JSON.parse(o.stdout) as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FuzzFinding(`${what}: output is not a JSON object: ${o.stdout.slice(0, 200)}`);
  return v as Record<string, unknown>;
}

/** ADD's result: the version asked for, and each address a host route (/32, /128) on an interface it lists. */
function assertAddResult(r: Record<string, unknown>, what: string): void {
  const ips = r['ips'];
  const interfaces = r['interfaces'];
  if (typeof r['cniVersion'] !== 'string') throw new FuzzFinding(`${what}: result without cniVersion`);
  if (!Array.isArray(ips) || ips.length === 0 || !Array.isArray(interfaces))
    throw new FuzzFinding(`${what}: result without ips or interfaces: ${JSON.stringify(r)}`);
  for (const ip of ips as Record<string, unknown>[]) {
    const [addr, len] = String(ip['address']).split('/');
    const family = isIP(addr ?? '');
    if (family === 0 || Number(len) !== (family === 4 ? 32 : 128))
      throw new FuzzFinding(`${what}: result address ${String(ip['address'])} is not a host route`);
    const i = ip['interface'];
    if (i !== undefined && (typeof i !== 'number' || !interfaces[i])) throw new FuzzFinding(`${what}: result ips[].interface ${String(i)} names no interface`);
  }
}

/**
 * Checks one outcome of `command`: success prints ADD's result, VERSION's
 * answer or nothing; failure prints one error JSON with a typed code.
 */
export function assertCniOutcome(o: Outcome, command: string): void {
  if (o.code === 0) {
    if (command === 'ADD') assertAddResult(oneJsonLine(o, command), command);
    else if (command === 'VERSION') {
      const v = oneJsonLine(o, command);
      if (typeof v['cniVersion'] !== 'string' || !Array.isArray(v['supportedVersions']))
        throw new FuzzFinding(`VERSION: answer lacks cniVersion/supportedVersions: ${o.stdout}`);
    } else if (o.stdout !== '') throw new FuzzFinding(`${command}: succeeded but printed ${o.stdout.slice(0, 200)}`);
    return;
  }
  const e = oneJsonLine(o, command);
  if (typeof e['cniVersion'] !== 'string' || typeof e['code'] !== 'number' || typeof e['msg'] !== 'string' || e['msg'] === '') {
    throw new FuzzFinding(`${command}: error JSON lacks cniVersion/code/msg: ${o.stdout.slice(0, 200)}`);
  }
  if (e['details'] !== undefined && typeof e['details'] !== 'string') throw new FuzzFinding(`${command}: details is not a string`);
  if (!INPUT_CODES.has(e['code'])) throw new FuzzFinding(`${command}: untyped failure (code ${e['code']}): ${e['msg']}`);
}

/** Fails when the time since `startedAt` exceeds the bound: no input may make the plugin hang. */
export function assertFast(startedAt: number, boundMs: number, what: string): void {
  const ms = performance.now() - startedAt;
  if (ms > boundMs) throw new FuzzFinding(`${what}: took ${Math.round(ms)} ms, bound ${boundMs} ms`);
}
