/**
 * Requests sent to another server (a private message for its member, a kick, a place it keeps),
 * waiting for that server's receipt: each has a number, and settles once the receipt comes, or
 * after a deadline without one.
 */

/** The requests this server sent that wait for a receipt. */
export class Receipts {
  #awaiting = new Map<number, (isDelivered: boolean) => void>();
  #count = 0;

  /**
   * A number for a new message, and its receipt: true once the other server delivered it, false
   * if its member was gone, undefined if no receipt came within `ms`.
   */
  expect(ms: number): { i: number; receipt: Promise<boolean | undefined> } {
    const i = ++this.#count;
    const { promise, resolve } = Promise.withResolvers<boolean | undefined>();
    this.#awaiting.set(i, resolve);
    const timer = setTimeout(() => resolve(undefined), ms);
    const receipt = promise.finally(() => {
      clearTimeout(timer);
      this.#awaiting.delete(i);
    });
    return { i, receipt };
  }

  /** The receipt of message `i` came (it may have come too late, and is ignored then). */
  settle(i: number, isDelivered: boolean): void {
    this.#awaiting.get(i)?.(isDelivered);
  }
}
