/** The server's log: each event one line, as today's prose (`text`) or as one JSON object (`json`). */

/** How bad an event is: `warn` for what an operator may want to look at, `error` for a fault. */
export type LogLevel = "info" | "warn" | "error";

/** The log's formats, for `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;
/** One of {@linkcode LOG_FORMATS}. */
export type LogFormat = typeof LOG_FORMATS[number];

/** What an event is, for a machine: its name, and the member, address, reason and counts it is about. */
export interface LogFields {
  /** A short fixed name (`join`, `leave`, `refused`...), the same for every line of its kind. */
  event: string;
  /** `info` unless said. */
  level?: LogLevel;
  name?: string;
  address?: string;
  reason?: string;
  counts?: Record<string, number>;
  /** A moderation act: which (`kick`, `ban`...), by which operator, on whom, and until when. */
  act?: string;
  by?: string;
  target?: string;
  until?: string;
}

/** Logs one event: `message` is the text line, `fields` what a JSON line adds to it. */
export type Log = (message: string, fields: LogFields) => void;

/** The line for one event in `format`, stamped with `time`. */
export function formatLogLine(
  time: Date,
  event: { message: string; fields: LogFields },
  format: LogFormat,
): string {
  const { message, fields } = event;
  if (format === "text") return `${time.toISOString()} ${message}`;
  const { event: name, level = "info", ...rest } = fields;
  return JSON.stringify({ time: time.toISOString(), level, event: name, ...rest, message });
}

/** A {@linkcode Log} that writes each event's line with `write` (standard output in `main.ts`). */
export function lineLog(format: LogFormat, write: (line: string) => void): Log {
  return (message, fields) => write(formatLogLine(new Date(), { message, fields }, format));
}

/** A peer's name (when it has one) and address, for an event about it. */
export function peerFields(
  peer: { name: string; where: string },
): { name?: string; address: string } {
  return peer.name ? { name: peer.name, address: peer.where } : { address: peer.where };
}
