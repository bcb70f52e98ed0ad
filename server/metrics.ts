/**
 * The server's counters, as plain numbers bumped where things happen (a relay pays an integer
 * increment, nothing more), and Prometheus' text format for them, written at scrape time.
 */

/** What the server counts as it goes; everything else is read when scraped. */
export class Tally {
  joins = 0;
  /** Lines of chat and actions said by members here. */
  linesSaid = 0;
  /** Writes to members' sockets that completed, and the bytes they carried. */
  deliveries = 0;
  bytesWritten = 0;
  /** Connections and joins turned away, by reason (`full`, `per address`, `join rate`...). */
  refusals = new Map<string, number>();
  /** Members gone, by reason: a close reason of the server's, `quit` or `disconnected`. */
  leaves = new Map<string, number>();
  /** Password checks, wrong ones among them, and attempts refused while backing off. */
  passwordChecks = 0;
  wrongPasswords = 0;
  backoffs = 0;
  /** Operators' acts, by act (`kick`, `ban`, ...). */
  moderation = new Map<string, number>();
  /** Kept places taken back with their token (`taken`) or given up at the end of their grace (`expired`). */
  resumes = new Map<string, number>();
  /** Tokens that took no place, by why (`unknown token`, `other name`, `past grace`). */
  resumeRefusals = new Map<string, number>();

  /** Adds one to `reason`'s count in `counts`. */
  static bump(counts: Map<string, number>, reason: string): void {
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
}

/** One sample: its labels and value. */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

/** One metric family: its name (without `chat_` for the server's own), type, help and samples. */
export interface Family {
  name: string;
  type: "counter" | "gauge";
  help: string;
  samples: Sample[];
}

/** Prometheus' text exposition format (version 0.0.4) for `families`. */
export function formatMetrics(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const { name, type, help, samples } of families) {
    lines.push(`# HELP ${name} ${help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`);
    lines.push(`# TYPE ${name} ${type}`);
    for (const { labels, value } of samples) lines.push(`${name}${formatLabels(labels)} ${value}`);
  }
  return lines.join("\n") + "\n";
}

function formatLabels(labels: Record<string, string> | undefined): string {
  if (!labels) return "";
  const pairs = Object.entries(labels).map(([key, value]) =>
    `${key}="${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return `{${pairs.join(",")}}`;
}

/** Samples of a map of counts by reason, one labelled `reason` each. */
export function byReason(counts: ReadonlyMap<string, number>): Sample[] {
  return [...counts].map(([reason, value]) => ({ labels: { reason }, value }));
}

/** The server's families: what its {@linkcode Tally} counted, and its members and room log now. */
export function serverFamilies(
  tally: Tally,
  census: {
    members: Record<string, number>;
    connections: number;
    logSize: number;
    logFill: number;
    bans?: number;
    keptPlaces?: number;
  },
): Family[] {
  const cuts = new Map([...tally.leaves].filter(([reason]) => !LEFT_BY_THEMSELVES.has(reason)));
  return [
    gauge(
      "chat_members",
      "Members joined on this server, by how they came",
      Object.entries(census.members).map(([kind, value]) => ({ labels: { kind }, value })),
    ),
    gauge("chat_connections", "Open connections, joined or not", [{ value: census.connections }]),
    counter("chat_joins_total", "Members who joined", [{ value: tally.joins }]),
    counter("chat_leaves_total", "Members who left, by reason", byReason(tally.leaves)),
    counter("chat_cuts_total", "Members the server cut off, by reason", byReason(cuts)),
    counter("chat_lines_total", "Lines and actions said by members here", [
      { value: tally.linesSaid },
    ]),
    counter("chat_deliveries_total", "Writes to members' sockets", [{ value: tally.deliveries }]),
    counter("chat_written_bytes_total", "Bytes written to members' sockets", [
      { value: tally.bytesWritten },
    ]),
    counter("chat_refusals_total", "Connections and joins refused, by reason", [
      ...byReason(tally.refusals),
    ]),
    gauge("chat_room_log_bytes", "Size of the room log", [{ value: census.logSize }]),
    gauge("chat_room_log_fill_bytes", "The most any member lags behind the log's head", [
      { value: census.logFill },
    ]),
    counter("chat_password_checks_total", "Passwords checked", [{ value: tally.passwordChecks }]),
    counter("chat_wrong_passwords_total", "Wrong passwords", [{ value: tally.wrongPasswords }]),
    counter("chat_password_backoffs_total", "Password attempts refused while backing off", [
      { value: tally.backoffs },
    ]),
    counter(
      "chat_moderation_total",
      "Operators' acts, by act",
      [...tally.moderation].map(([act, value]) => ({ labels: { act }, value })),
    ),
    gauge("chat_bans", "Bans in force", [{ value: census.bans ?? 0 }]),
    gauge("chat_kept_places", "Places kept for members whose connection was lost", [
      { value: census.keptPlaces ?? 0 },
    ]),
    counter(
      "chat_resumes_total",
      "Kept places taken back, expired, or refused by reason",
      resumeSamples(tally),
    ),
  ];
}

function counter(name: string, help: string, samples: Sample[]): Family {
  return { name, type: "counter", help, samples };
}

function gauge(name: string, help: string, samples: Sample[]): Family {
  return { name, type: "gauge", help, samples };
}

/** What became of kept places: taken back, expired, and tokens refused by reason. */
function resumeSamples(tally: Tally): Sample[] {
  return [
    ...[...tally.resumes].map(([result, value]) => ({ labels: { result }, value })),
    ...[...tally.resumeRefusals].map(([reason, value]) => ({
      labels: { result: "refused", reason },
      value,
    })),
  ];
}

/** Leave reasons that are the member's own doing, not a cut. */
const LEFT_BY_THEMSELVES = new Set(["quit", "disconnected"]);
