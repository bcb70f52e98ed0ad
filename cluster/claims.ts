/**
 * This server's members' claims on their names in Redis (`SET` with a lifetime, renewed): made and
 * given up while the room is whole; in a partition a name is claimed on healing, and a claim
 * given up then expires by itself.
 */
import { formatClaim } from "./events.ts";
import type { Link } from "./redis_link.ts";

/** What the hub keeps of a member here: its id for the other servers, and since when it holds its
 * name (Redis clock, ms), which decides who keeps a name two people took in a partition. */
export interface LocalMember {
  id: string;
  since: number;
}

/** The claims of one server's members. */
export class Claims {
  #server: string;
  #ttlMs: number;
  #wholeLink: () => Link | undefined;

  /** Claims for `server`, living `ttlMs`, through the link while the room is whole. */
  constructor(server: string, ttlMs: number, wholeLink: () => Link | undefined) {
    this.#server = server;
    this.#ttlMs = ttlMs;
    this.#wholeLink = wholeLink;
  }

  /** Claims a name for a member joining or renaming here, when Redis can be reached: false if
   * someone holds it. In a partition, or if Redis fails to answer, the name is claimed on healing. */
  async tryClaim(name: string, info: LocalMember): Promise<boolean> {
    const link = this.#wholeLink();
    if (!link) return true;
    return await link.within(this.claim(link, name, info, false)).catch(() => true);
  }

  /** Takes or renews a claim; contested, from one who took the name later (see the link's). */
  claim(link: Link, name: string, info: LocalMember, isContested: boolean): Promise<boolean> {
    const options = { server: this.#server, since: info.since, ttlMs: this.#ttlMs, isContested };
    return link.claim(name, formatClaim(this.#server, info, name), options);
  }

  /** Gives up a claim, if it is still this one; in a partition it expires by itself. */
  release(name: string, info: LocalMember): void {
    this.#wholeLink()?.release(name, formatClaim(this.#server, info, name));
  }
}
