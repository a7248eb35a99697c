// Label selectors (metav1.LabelSelector), validated once and compiled to a
// list of requirements that are ANDed. Semantics follow the API reference:
// - matchLabels {k: v} is the requirement `k In (v)`; matchLabels and
//   matchExpressions are ANDed; an empty selector `{}` matches everything.
// - In: the key is present and its value is one of `values`.
// - NotIn: the key is absent, or its value is none of `values` (so NotIn
//   matches objects that lack the label entirely).
// - Exists / DoesNotExist: the key is present / absent; values must be empty.
// - A *null* selector matches nothing in the generic metav1 meaning, but
//   NetworkPolicy never uses that meaning: every absent selector there stands
//   for something else (see compileOptionalSelector and normalize.ts). So the
//   caller must say what absence means at each use; nothing defaults silently.
// An invalid selector (unknown operator, In/NotIn without values, values on
// Exists, non-string labels) throws PolicyError rather than being skipped:
// ignoring one requirement would widen the selector.
import { PolicyError, type PolicyRef, show } from './errors.ts';
import type { LabelSelector, LabelSelectorOperator, Labels } from './types.ts';

export interface Requirement {
  readonly key: string;
  readonly operator: LabelSelectorOperator;
  /** Sorted and de-duplicated; empty for Exists and DoesNotExist. */
  readonly values: readonly string[];
}

export interface CompiledSelector {
  /** ANDed; sorted, so equal selectors compile to equal lists. */
  readonly requirements: readonly Requirement[];
  /** True for the selector that matches no object at all (a null selector where absence means "none"). */
  readonly matchesNothing: boolean;
  /** Canonical identity, usable as a memo key: equal keys select the same objects. */
  readonly key: string;
}

const OPERATORS: ReadonlySet<string> = new Set<LabelSelectorOperator>(['In', 'NotIn', 'Exists', 'DoesNotExist']);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function build(requirements: Requirement[], matchesNothing: boolean): CompiledSelector {
  requirements.sort((a, b) => cmp(a.key, b.key) || cmp(a.operator, b.operator) || cmp(a.values.join('\0'), b.values.join('\0')));
  const key = matchesNothing ? '!nothing' : JSON.stringify(requirements.map((r) => [r.key, r.operator, r.values]));
  return { requirements, matchesNothing, key };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The selector `{}`: matches every object. */
export const EVERYTHING: CompiledSelector = build([], false);
/** The null selector in its generic metav1 meaning: matches no object. */
export const NOTHING: CompiledSelector = build([], true);

/**
 * Validates and compiles a present selector. `field` names it in errors
 * (e.g. `spec.ingress[0].from[1].podSelector`); `policy` attributes them.
 */
export function compileSelector(sel: LabelSelector, field = 'selector', policy?: PolicyRef): CompiledSelector {
  const fail = (at: string, problem: string): never => {
    throw new PolicyError(at, problem, policy);
  };
  if (!isPlainObject(sel)) fail(field, `must be a label selector object, got ${show(sel)}`);
  const reqs: Requirement[] = [];

  const ml: unknown = sel.matchLabels;
  if (ml !== undefined && ml !== null) {
    if (!isPlainObject(ml)) fail(`${field}.matchLabels`, `must be a map of strings, got ${show(ml)}`);
    for (const [k, v] of Object.entries(ml as Record<string, unknown>)) {
      if (k === '') fail(`${field}.matchLabels`, 'label key must not be empty');
      if (typeof v !== 'string') fail(`${field}.matchLabels[${show(k)}]`, `label value must be a string, got ${show(v)}`);
      reqs.push({ key: k, operator: 'In', values: [v as string] });
    }
  }

  const me: unknown = sel.matchExpressions;
  if (me !== undefined && me !== null) {
    if (!Array.isArray(me)) fail(`${field}.matchExpressions`, `must be a list, got ${show(me)}`);
    (me as unknown[]).forEach((e, i) => {
      const at = `${field}.matchExpressions[${i}]`;
      if (!isPlainObject(e)) fail(at, `must be a requirement object, got ${show(e)}`);
      const r = e as Record<string, unknown>;
      if (typeof r.key !== 'string' || r.key === '') fail(`${at}.key`, `must be a non-empty string, got ${show(r.key)}`);
      if (typeof r.operator !== 'string' || !OPERATORS.has(r.operator)) {
        fail(`${at}.operator`, `must be one of In, NotIn, Exists, DoesNotExist, got ${show(r.operator)}`);
      }
      const op = r.operator as LabelSelectorOperator;
      const raw: unknown = r.values ?? [];
      if (!Array.isArray(raw) || raw.some((v) => typeof v !== 'string')) fail(`${at}.values`, `must be a list of strings, got ${show(raw)}`);
      const values = [...new Set(raw as string[])].sort(cmp);
      if ((op === 'In' || op === 'NotIn') && values.length === 0) {
        // An empty In would match nothing and an empty NotIn everything; the
        // API rejects both, and guessing either here would change the policy.
        fail(`${at}.values`, `must be non-empty when operator is ${op}`);
      }
      if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) {
        fail(`${at}.values`, `must be empty when operator is ${op}`);
      }
      reqs.push({ key: r.key as string, operator: op, values });
    });
  }
  return build(reqs, false);
}

/**
 * Compiles a selector that may be absent (undefined or JSON null), with the
 * meaning of absence chosen by the caller: `'everything'` (e.g. a
 * NetworkPolicy's spec.podSelector, which "defaults to an empty selector") or
 * `'nothing'` (the generic metav1 rule, "a null label selector matches no
 * objects").
 */
export function compileOptionalSelector(
  sel: LabelSelector | null | undefined,
  ifAbsent: 'everything' | 'nothing',
  field = 'selector',
  policy?: PolicyRef,
): CompiledSelector {
  if (sel === undefined || sel === null) return ifAbsent === 'everything' ? EVERYTHING : NOTHING;
  return compileSelector(sel, field, policy);
}

/** True when `labels` satisfies every requirement of `sel`. Absent labels are the empty set. */
export function selectorMatches(sel: CompiledSelector, labels: Labels | null | undefined): boolean {
  if (sel.matchesNothing) return false;
  const l = labels ?? {};
  for (const r of sel.requirements) {
    // Own properties only: a label named `constructor` is not inherited.
    const has = Object.hasOwn(l, r.key);
    const v = has ? l[r.key] : undefined;
    switch (r.operator) {
      case 'In':
        if (!has || v === undefined || !r.values.includes(v)) return false;
        break;
      case 'NotIn':
        if (has && v !== undefined && r.values.includes(v)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Validates, compiles and matches in one step (for callers that match once). */
export const matchesLabelSelector = (sel: LabelSelector, labels: Labels | null | undefined): boolean => selectorMatches(compileSelector(sel), labels);

/** kubectl-style text: `app=web,tier in (a,b),!legacy`; `<everything>` / `<nothing>` for the trivial ones. */
export function formatSelector(sel: CompiledSelector): string {
  if (sel.matchesNothing) return '<nothing>';
  if (sel.requirements.length === 0) return '<everything>';
  return sel.requirements
    .map((r) => {
      switch (r.operator) {
        case 'In':
          return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(',')})`;
        case 'NotIn':
          return `${r.key} notin (${r.values.join(',')})`;
        case 'Exists':
          return r.key;
        case 'DoesNotExist':
          return `!${r.key}`;
      }
      return '';
    })
    .join(',');
}
