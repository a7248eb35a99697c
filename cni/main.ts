// The `weir` CNI plugin executable: read stdin, dispatch through the table of
// verbs (src/plugin/verbs.ts: each verb and, for ADD and DEL, the hand-off to
// the agent), print. stdout carries only the result or the error JSON; logs
// go to stderr, which runtimes capture.
import fs from 'node:fs';
import { startupSnapshot } from 'node:v8';
import { invoke } from '../src/plugin/invoke.ts';
import { verbs } from '../src/plugin/verbs.ts';

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function main(): void {
  void invoke(process.env, readStdin(), verbs).then(({ code, stdout }) => {
    process.stdout.write(stdout);
    // Exit at once rather than let the loop drain and the heap be torn down:
    // nothing is left to wait for, and the teardown is a measurable part of a
    // start (docs/cni-start.md). Writes to a pipe or file are synchronous on
    // Linux, so stdout and stderr are complete when it returns.
    process.exit(code);
  });
}

// The build evaluates this bundle once and keeps the heap as the executable's
// startup snapshot, so an invocation skips loading the code and only runs main.
// Everything that depends on the invocation (environment, stdin, the netns,
// koffi's native addon) is read inside main, never at module load. The bundle
// run by plain node (no snapshot being built) runs main at once.
if (startupSnapshot.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(main);
else main();
