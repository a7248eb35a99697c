// The agent's /metrics as the benchmarks read them: through weirctl's parser,
// the samples without labels by name (the histograms' _sum and _count, the
// process counters).
import { parsePrometheus } from '../../../src/weirctl/metrics.ts';

export function unlabelledSamples(text: string): Record<string, number> {
  const v: Record<string, number> = {};
  for (const s of parsePrometheus(text)) if (Object.keys(s.labels).length === 0) v[s.name] = s.value;
  return v;
}
