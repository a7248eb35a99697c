// Tear-down that tries every step: one that fails does not keep the later
// ones (stopping processes, deleting namespaces and directories) from
// running, and the first error is thrown once all have run.

/** Runs and awaits each step in order; throws the first error after the last step. */
export async function tryEach(steps: Iterable<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw errors[0];
}
