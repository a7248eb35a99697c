// weir's install manifests, exactly as a kind user would apply them:
// deploy/weir.yaml when it exists (the single-file release manifest),
// otherwise every deploy/parts/*.yaml in name order.
import fs from 'node:fs';
import path from 'node:path';

export interface Manifests {
  /** The files, in apply order. */
  files: string[];
  /** Their contents as one multi-document YAML stream. */
  yaml: string;
}

export function weirManifests(repo: string): Manifests {
  const single = path.join(repo, 'deploy/weir.yaml');
  let files: string[];
  if (fs.existsSync(single)) {
    files = [single];
  } else {
    const partsDir = path.join(repo, 'deploy/parts');
    let names: string[] = [];
    try {
      names = fs.readdirSync(partsDir).filter((n) => /\.ya?ml$/.test(n));
    } catch {
      // reported below
    }
    names.sort();
    files = names.map((n) => path.join(partsDir, n));
  }
  if (files.length === 0) throw new Error(`no manifests: neither ${single} nor ${path.join(repo, 'deploy/parts')}/*.yaml exist`);
  const yaml = files.map((f) => `# Source: ${path.relative(repo, f)}\n${fs.readFileSync(f, 'utf8').replace(/\s*$/, '\n')}`).join('---\n');
  return { files, yaml };
}

export interface AppliedObject {
  kind: string;
  name: string;
  namespace?: string;
}

/** The objects in `kubectl apply -o json` output (a List, or a single object). */
export function appliedObjects(applyJson: string): AppliedObject[] {
  const doc = JSON.parse(applyJson) as { kind?: string; items?: unknown[]; metadata?: { name?: string; namespace?: string } };
  const items = (doc.kind === 'List' ? (doc.items ?? []) : [doc]) as { kind?: string; metadata?: { name?: string; namespace?: string } }[];
  return items.map((o) => ({ kind: o.kind ?? '', name: o.metadata?.name ?? '', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}) }));
}
