// Sysctls under /proc/sys/net belong to the network namespace of the thread
// that opens the file, so a pod's are written from inside inNetns.
import fs from 'node:fs';
import { IoError } from '../errors.ts';
import { inNetns, type Netns } from './netns.ts';

// Keys are written with '/' (net/ipv4/ip_forward), not dots: interface names
// such as eth0.100 contain dots of their own.
const path = (key: string): string => `/proc/sys/${key}`;

export function readSysctl(key: string): string {
  try {
    return fs.readFileSync(path(key), 'utf8').trim();
  } catch (e) {
    throw new IoError(`cannot read sysctl ${key}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Writes `value` unless it is already set; returns whether it wrote. */
export function ensureSysctl(key: string, value: string, ns?: Netns): boolean {
  const run = (): boolean => {
    if (readSysctl(key) === value) return false;
    try {
      fs.writeFileSync(path(key), value);
    } catch (e) {
      throw new IoError(`cannot set sysctl ${key}=${value}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    return true;
  };
  return ns ? inNetns(ns, run) : run();
}
