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

Deno.test("readServerFlags: --irc [HOST:]PORT and --irc-channel, checked, granted in the rerun", () => {
  assert.equal(plan([]).irc, undefined);
  assert.deepEqual(plan(["--irc", "6667"]).irc, { hostname: "0.0.0.0", port: 6667 });
  assert.deepEqual(plan(["--irc", "127.0.0.1:6697"]).irc, { hostname: "127.0.0.1", port: 6697 });
  assert.equal(plan(["--irc", "6667"]).ircChannel, "#chat");
  assert.equal(plan(["--irc", "6667", "--irc-channel", "#lobby"]).ircChannel, "#lobby");
  assert.ok(plan(["--irc", "6667"]).rerun.includes("0.0.0.0:6667"));
  for (
    const [args, message] of [
      [["--irc", "x"], /^Invalid --irc "x": use a whole number/],
      [
        ["--irc", "1234"],
        /^--irc 1234 is the chat's own port: give the IRC door a port of its own/,
      ],
      [["--irc-channel", "#a"], /^--irc-channel goes with --irc$/],
      [
        ["--irc", "6667", "--irc-channel", "lobby"],
        /^Invalid --irc-channel "lobby": a channel is #/,
      ],
      [["--irc", "6667", "--irc-channel", "#a b"], /^Invalid --irc-channel "#a b"/],
      [["--irc", "6667", "--irc-channel", `#${"x".repeat(50)}`], /at most 50 characters/],
    ] as const
  ) {
    assert.throws(() => readServerFlags([...args]), (error: Error) => {
      assert.ok(error instanceof UsageError, error.message);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("readServerFlags: --resume-grace S is the seconds a dropped member's place is kept, 0 for none", () => {
  assert.equal(plan([]).limits.resumeGraceMs, 30_000);
  assert.equal(plan(["--resume-grace", "5"]).limits.resumeGraceMs, 5_000);
  assert.equal(plan(["--resume-grace", "0"]).limits.resumeGraceMs, 0);
  assert.throws(() => plan(["--resume-grace", "-1"]), UsageError);
  assert.throws(() => plan(["--resume-grace", "3601"]), UsageError);
});
