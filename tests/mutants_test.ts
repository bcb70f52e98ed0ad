/** Tests of the mutation check's reading of `deno test`'s report (tests/mutants/run.ts). */
import assert from "node:assert/strict";
import { testResults } from "./mutants/run.ts";

Deno.test("testResults counts a test that failed after the notice of a test running over a minute", () => {
  // Deno 2.9.6's report, as it came from the join storm under the mutant notice-wake-never-fires.
  const name = "join storm: in a room of 1,000, everyone hears each later join once";
  const output = `running 3 tests from ./tests/abuse_test.ts
quick one ... ok (12ms)
${name} ...'${name}' has been running for over (1m0s)
 FAILED (1m0s)
slow one ...'slow one' has been running for over (1m0s)
'slow one' has been running for over (2m0s)
 ok (2m3s)

 ERRORS 

${name} => ./tests/abuse_test.ts:321:6
error: TimeoutError: Timed out after 60000 ms waiting for a member to hear every other join

FAILED | 2 passed | 1 failed (3m3s)
`;
  assert.deepEqual(testResults(output), { passed: ["quick one", "slow one"], failed: [name] });
});
