/**
 * TLS for the server's connections: `node:tls` over a TCP connection the server accepted itself.
 *
 * Not `Deno.listenTls`: in Deno 2.9.6 a TLS connection whose handshake has not finished cannot be
 * closed. Its `close()` waits for the handshake, which has no deadline, so a client that connects
 * and sends nothing keeps the socket open for as long as it likes (measured: 500 such connections
 * held 500 file descriptors after the server had closed them all). Here the server owns the TCP
 * socket, so closing it ends the connection whatever state TLS is in; and Nagle's algorithm can be
 * turned off, which `Deno.TlsConn` cannot do.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { Duplex } from "node:stream";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";
import { type ChatConn, closeQuietly } from "./conn.ts";

/**
 * A certificate chain and key, checked and ready; throws if they are not a usable pair. Checked
 * here because Deno's `createSecureContext` takes anything, and the mistake would show only as
 * every handshake failing after the server said it was listening.
 */
export function tlsContext(pem: { cert: string; key: string }): SecureContext {
  let certificate: X509Certificate;
  let key: KeyObject;
  try {
    certificate = new X509Certificate(pem.cert);
  } catch {
    throw new Error("the certificate file holds no PEM certificate");
  }
  try {
    key = createPrivateKey(pem.key);
  } catch {
    throw new Error("the key file holds no PEM private key");
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new Error("the key does not belong to the certificate");
  }
  return createSecureContext({ cert: pem.cert, key: pem.key });
}

/** Plaintext waiting to be read before the socket is paused, so a fast sender cannot fill memory. */
const MAX_QUEUED_BYTES = 64 * 1024;
/** Ciphertext read from the socket at once (a TLS record is at most 16 KiB and a header). */
const RECORD_BYTES = 17 * 1024;

/** What TLS runs over: a TCP connection, or one whose PROXY header has been read (`ProxiedConn`). */
export interface TcpTransport extends ChatConn {
  setNoDelay(noDelay?: boolean): void;
}

/** A server-side TLS connection over `tcp`, which it owns; it speaks once the handshake is done. */
export class TlsConn implements ChatConn {
  readonly remoteAddr: Deno.Addr;
  readonly #tcp: TcpTransport;
  readonly #tls: TLSSocket;
  readonly #handshake: Promise<void>;
  #chunks: Uint8Array[] = [];
  #queuedBytes = 0;
  #isEnded = false;
  #isClosed = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(tcp: TcpTransport, context: SecureContext) {
    this.#tcp = tcp;
    this.remoteAddr = tcp.remoteAddr;
    tcp.setNoDelay(true); // a chat line must leave now, not wait for an ACK
    this.#tls = new TLSSocket(transport(tcp), { isServer: true, secureContext: context });
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#handshake = promise;
    promise.catch(() => {}); // whoever cares awaits it; an unawaited failure is not an error
    this.#tls.once("secure", resolve);
    this.#tls.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#queuedBytes += chunk.length;
      if (this.#queuedBytes > MAX_QUEUED_BYTES) this.#tls.pause();
      this.#notify();
    });
    this.#tls.on("end", () => this.#finish());
    this.#tls.on("close", () => {
      reject(new Deno.errors.UnexpectedEof("The connection closed during the TLS handshake"));
      this.#finish();
    });
    this.#tls.on("error", (error: Error) => {
      this.#error ??= translate(error);
      reject(this.#error);
      this.#finish();
    });
  }

  /** Settles when the handshake is done; rejects if it fails or the connection ends first. */
  handshake(): Promise<void> {
    return this.#handshake;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error && !this.#isClosed) throw this.#error;
      if (this.#isEnded || this.#isClosed) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let count = 0;
    while (count < buffer.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const taken = Math.min(chunk.length, buffer.length - count);
      buffer.set(chunk.subarray(0, taken), count);
      count += taken;
      if (taken === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(taken);
    }
    this.#queuedBytes -= count;
    if (this.#queuedBytes <= MAX_QUEUED_BYTES / 2 && !this.#isEnded) this.#tls.resume();
    return count;
  }

  /** Settles once `bytes` has been encrypted and handed to the kernel; `bytes` is not copied. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#isClosed) return Promise.reject(new Deno.errors.BadResource("Connection closed"));
    return new Promise((resolve, reject) => {
      this.#tls.write(bytes, (error) => error ? reject(translate(error)) : resolve(bytes.length));
    });
  }

  /** Sends TLS's close_notify and the TCP FIN once everything written is out. */
  closeWrite(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#tls.end(() => resolve());
      this.#tls.once("error", reject);
    });
  }

  close(): void {
    if (this.#isClosed) throw new Deno.errors.BadResource("Connection already closed");
    this.#isClosed = true;
    this.#tls.destroy();
    closeQuietly(this.#tcp); // the transport may have closed it first
    this.#notify();
  }

  #finish(): void {
    this.#isEnded = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** The TCP connection as the Duplex stream that `TLSSocket` encrypts over. */
function transport(tcp: TcpTransport): Duplex {
  let isReading = false;
  const duplex: Duplex = new Duplex({
    read() {
      if (isReading) return;
      isReading = true;
      const buffer = new Uint8Array(RECORD_BYTES);
      tcp.read(buffer).then((count) => {
        isReading = false;
        if (count === null) duplex.push(null);
        else if (duplex.push(buffer.subarray(0, count))) duplex.read(0);
      }, (error) => duplex.destroy(translate(error)));
    },
    write(chunk: Uint8Array, _encoding, done) {
      writeAll(tcp, chunk).then(() => done(), (error) => done(translate(error)));
    },
    final(done) {
      tcp.closeWrite().then(() => done(), (error) => done(translate(error)));
    },
    destroy(error, done) {
      closeQuietly(tcp);
      done(error);
    },
  });
  return duplex;
}

async function writeAll(tcp: TcpTransport, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await tcp.write(bytes.subarray(offset));
}

/** Node's errors as Deno's, so that the server tells a client gone from a real failure. */
function translate(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.ConnectionReset) {
    return error;
  }
  switch ((error as { code?: string }).code) {
    case "ECONNRESET":
      return new Deno.errors.ConnectionReset(error.message);
    case "EPIPE":
      return new Deno.errors.BrokenPipe(error.message);
    case "ERR_STREAM_DESTROYED":
    case "ERR_STREAM_WRITE_AFTER_END":
      return new Deno.errors.BadResource(error.message);
  }
  return error;
}
