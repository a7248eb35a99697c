// Loads koffi, the FFI layer. Inside a Node single-executable application the
// native addon cannot be required from the embedded blob, so the build ships
// `koffi.node` beside the executable and we dlopen it from there.
import { createRequire } from 'node:module';
import path from 'node:path';

export interface KoffiFunction {
  (...args: unknown[]): unknown;
}
export interface KoffiLibrary {
  func(signature: string): KoffiFunction;
}
export interface Koffi {
  load(name: string): KoffiLibrary;
  errno(): number;
}

let koffi: Koffi | undefined;

function isSea(): boolean {
  try {
    // node:sea exists from Node 20; isSea() is false under plain `node`.
    return (createRequire(import.meta.url)('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

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
