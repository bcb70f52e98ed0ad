/** Tests of the command line's flags, read with no I/O. */
import assert from "node:assert/strict";
import { readServerFlags, type ServerPlan, UsageError } from "../cli/flags.ts";

function plan(args: string[]): ServerPlan {
  const read = readServerFlags(args);
  assert.ok(read !== "help" && read !== "version");
  return read;
}

Deno.test("readServerFlags: --exempt is loopback unless given, repeatable, and none alone for no address", () => {
  assert.deepEqual(plan([]).exempt, ["127.0.0.0/8", "::1"]);
  assert.deepEqual(plan(["--exempt", "10.0.0.0/8", "--exempt", "fd00::/8"]).exempt, [
    "10.0.0.0/8",
    "fd00::/8",
  ]);
  assert.deepEqual(plan(["--exempt", "none"]).exempt, []);
  assert.throws(() => plan(["--exempt", "none", "--exempt", "::1"]), {
    name: "UsageError",
    message: "--exempt none goes alone",
  });
  assert.throws(() => plan(["--exempt", "10.0.0.0/33"]), {
    name: "UsageError",
    message:
      'Invalid --exempt "10.0.0.0/33": use ADDRESS[/BITS], as 10.0.0.0/8 or fd00::/8, or none',
  });
  assert.throws(() => plan(["--exempt"]), UsageError);
  // The command a permission error suggests keeps every block.
  assert.match(
    plan(["--exempt", "10.0.0.0/8", "--exempt", "::1"]).rerun,
    /--exempt 10\.0\.0\.0\/8 --exempt ::1$/,
  );
});

Deno.test("readServerFlags: --proxy-protocol is none unless given, repeatable, apart from --trust-proxy", () => {
  assert.deepEqual(plan([]).proxyProtocol, []);
  const given = plan(["--proxy-protocol", "127.0.0.1", "--proxy-protocol", "::1"]);
  assert.deepEqual(given.proxyProtocol, ["127.0.0.1", "::1"]);
  assert.deepEqual(given.trustProxy, []);
  assert.deepEqual(plan(["--trust-proxy", "127.0.0.1"]).proxyProtocol, []);
  assert.throws(() => plan(["--proxy-protocol", "localhost"]), {
    name: "UsageError",
    message:
      'Invalid --proxy-protocol "localhost": use ADDRESS[/BITS], as 10.0.0.0/8 or fd00::/8, or none',
  });
});

Deno.test("readServerFlags: --trust-proxy is none unless given, repeatable, each block checked", () => {
  assert.deepEqual(plan([]).trustProxy, []);
  assert.deepEqual(plan(["--trust-proxy", "127.0.0.1", "--trust-proxy", "10.0.0.0/8"]).trustProxy, [
    "127.0.0.1",
    "10.0.0.0/8",
  ]);
  assert.throws(() => plan(["--trust-proxy", "localhost"]), {
    name: "UsageError",
    message:
      'Invalid --trust-proxy "localhost": use ADDRESS[/BITS], as 10.0.0.0/8 or fd00::/8, or none',
  });
});
