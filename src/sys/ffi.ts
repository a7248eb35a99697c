// Loads koffi, the FFI layer. Inside a Node single-executable application the
// native addon cannot be required from the embedded blob, so the build ships
// `koffi.node` beside the executable and we dlopen it from there.
import path from 'node:path';

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
  // node:sea and node:module are looked up here, not imported: the plugin's
  // executable evaluates this module while building its V8 startup snapshot,
  // and Node does not vouch for either module's state across a snapshot.
  if (process.getBuiltinModule('node:sea').isSea()) {
    const mod = { exports: {} as Koffi };
    process.dlopen(mod, path.join(path.dirname(process.execPath), 'koffi.node'));
    koffi = mod.exports;
  } else {
    koffi = process.getBuiltinModule('node:module').createRequire(import.meta.url)('koffi') as Koffi;
  }
  return koffi;
}
