// Loads koffi, the FFI layer. Inside a Node single-executable application the
// native addon cannot be required from the embedded blob, so the build ships
// `koffi.node` beside the executable and we dlopen it from there.
import { createRequire } from 'node:module';
import path from 'node:path';
import { isSea } from 'node:sea';

export type KoffiFunction = (...args: unknown[]) => unknown;
export interface KoffiLibrary {
  func(signature: string): KoffiFunction;
}
export interface Koffi {
  load(name: string): KoffiLibrary;
  errno(): number;
}

let koffi: Koffi | undefined;

export function loadKoffi(): Koffi {
  if (koffi) return koffi;
  if (isSea()) {
    const mod = { exports: {} as Koffi };
    process.dlopen(mod, path.join(path.dirname(process.execPath), 'koffi.node'));
    koffi = mod.exports;
  } else {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  }
  return koffi;
}
