// Node runs the project's .ts files by stripping their types, after every
// loader hook. Jazzer.js instruments only modules whose format is "module",
// so this hook strips the types first and hands Jazzer.js plain ESM: without
// it the product code would run uninstrumented and the fuzzer would be blind.
// Registered before Jazzer.js's own hook, it runs after it in the chain.
import { register, stripTypeScriptTypes } from 'node:module';

// Jazzer.js appends ".js" to a fuzz target path without a JS extension.
export async function resolve(specifier, context, nextResolve) {
  return nextResolve(specifier.endsWith('.ts.js') ? specifier.slice(0, -3) : specifier, context);
}

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (result.format !== 'module-typescript') return result;
  const source = typeof result.source === 'string' ? result.source : Buffer.from(result.source).toString('utf8');
  return { ...result, format: 'module', source: stripTypeScriptTypes(source, { mode: 'strip' }) };
}

if (!import.meta.url.includes('?hook')) register(`${import.meta.url}?hook`);
