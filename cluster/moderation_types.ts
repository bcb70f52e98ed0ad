// PROVISIONAL: the contract's seam until helper A's lands (then imported from server/).
export interface Ban {
  target: string;
  kind: "name" | "address";
  by: string;
  at: number;
  until?: number;
  reason?: string;
}
export interface Mute {
  name: string;
  by: string;
  at: number;
  until?: number;
  reason?: string;
}
export interface Topic {
  text: string;
  by: string;
  at: number;
}
export type ModerationChange =
  | { kind: "operator"; name: string; isOperator: boolean }
  | { kind: "ban"; ban: Ban }
  | { kind: "unban"; ban: Ban }
  | { kind: "mute"; mute: Mute }
  | { kind: "unmute"; mute: Mute }
  | { kind: "topic"; topic: Topic | undefined };
export interface ModerationStore {
  isOperator(name: string): boolean;
  operators(): string[];
  bans(): Ban[];
  mutes(): Mute[];
  topic(): Topic | undefined;
  setOperator(name: string, isOperator: boolean): Promise<void>;
  addBan(ban: Ban): Promise<void>;
  removeBan(target: string): Promise<boolean>;
  addMute(mute: Mute): Promise<void>;
  removeMute(name: string): Promise<boolean>;
  setTopic(topic: Topic | undefined): Promise<void>;
  onChange?: (change: ModerationChange) => void;
}
