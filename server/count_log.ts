/**
 * The periodic log lines of what was refused or failed: connections and joins over the limits
 * (admission), wrong passwords (login), TLS handshakes and PROXY headers. Each is counted where it
 * happens and logged here in one line per kind, at most once a second, so that a flood of them
 * cannot flood the log. It asks the others for their counts and never calls back into the server.
 */
import type { Log } from "./log.ts";
import type { Admission } from "./admission.ts";
import type { Login } from "./login.ts";
import type { ProxyHeaders } from "./proxied_conn.ts";

/** The shortest time between two rounds of count lines. */
const INTERVAL_MS = 1000;

/** What to log the counts of, and where. */
export interface CountSources {
  log: Log;
  admission: Admission;
  login: Login;
  proxyHeaders: ProxyHeaders;
}

/** Counts TLS handshakes failed, and logs every count of what was refused or failed. */
export class CountLog {
  #sources: CountSources;
  /** TLS handshakes failed since the last log line about them, and the last one's reason. */
  #failedHandshakes = 0;
  #lastHandshakeFailure = "";
  /** Connections refused since the last log line about them because a ban holds for the address. */
  #banned = 0;
  #loggedAt = 0;

  constructor(sources: CountSources) {
    this.#sources = sources;
  }

  /** Counts a connection refused because a ban holds for its address. */
  bannedRefused(): void {
    this.#banned++;
  }

  /** Counts a TLS handshake that failed, for `reason`. */
  handshakeFailed(reason: string): void {
    this.#failedHandshakes++;
    this.#lastHandshakeFailure = reason;
  }

  /**
   * One log line for what was refused or failed since the last one, if anything was and the last
   * was a second ago or more: sweeps come faster than that when a time limit is short.
   */
  logCounts(now: number): void {
    if (now - this.#loggedAt < INTERVAL_MS) return;
    const { log, admission, login, proxyHeaders } = this.#sources;
    if (admission.logCounts()) this.#loggedAt = now;
    const guesses = login.takeCounts();
    if (guesses) {
      log(guesses.message, {
        event: "wrong passwords",
        level: "warn",
        reason: "wrong password",
        counts: guesses.counts,
      });
      this.#loggedAt = now;
    }
    if (this.#failedHandshakes > 0) {
      log(
        `${this.#failedHandshakes} TLS handshake(s) failed (last: ${this.#lastHandshakeFailure})`,
        {
          event: "handshakes failed",
          level: "warn",
          reason: this.#lastHandshakeFailure,
          counts: { handshakes: this.#failedHandshakes },
        },
      );
      this.#failedHandshakes = 0;
      this.#loggedAt = now;
    }
    if (this.#banned > 0) {
      log(`refused ${this.#banned} connection(s) from banned addresses`, {
        event: "refused",
        level: "info",
        reason: "banned",
        counts: { connections: this.#banned },
      });
      this.#banned = 0;
      this.#loggedAt = now;
    }
    const headers = proxyHeaders.takeCounts();
    if (headers) {
      log(headers.message, {
        event: "proxy headers failed",
        level: "warn",
        reason: headers.last,
        counts: { headers: headers.count },
      });
      this.#loggedAt = now;
    }
  }
}
