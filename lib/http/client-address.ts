import ipaddr from "ipaddr.js";

/**
 * Who is calling: the client's IP address, for the sign-in throttle, the
 * limit on failed API-key authentications and the audit log.
 *
 * - Behind `CONCORD_TRUST_PROXY` = n reverse proxies, each appends the
 *   address it saw to X-Forwarded-For, so the client is the n-th entry from
 *   the right; what a client writes into the header itself stays to the left
 *   and is never believed.
 * - With no trusted proxy (the default) X-Forwarded-For is ignored: anyone can
 *   send it, and `next start` keeps a client's own header instead of writing
 *   the peer address. The address is the TCP connection's peer, which the
 *   server process stamps on every request as PEER_ADDRESS_HEADER (see
 *   installPeerAddressHeader); a client cannot forge that header because the
 *   stamp replaces whatever the request carried.
 * - Where neither is available (the hook is not installed in this process)
 *   the address is "unknown", and all such callers share one budget.
 */

export const UNKNOWN_ADDRESS = "unknown";
export const PEER_ADDRESS_HEADER = "x-concord-peer-address";

const INSTALLED = Symbol.for("concord.peerAddressHeader");
type WithFlag = typeof globalThis & { [INSTALLED]?: true };

/** Whether this process stamps requests with their peer address. */
export function peerAddressStamped(): boolean {
  return (globalThis as WithFlag)[INSTALLED] === true;
}

/** Marks the process as stamping PEER_ADDRESS_HEADER on every request (lib/http/peer-address.ts). */
export function markPeerAddressStamped(): void {
  (globalThis as WithFlag)[INSTALLED] = true;
}

/** The client's address (normalised, IPv4-mapped IPv6 as IPv4), or UNKNOWN_ADDRESS. */
export function clientAddress(headers: Headers, trustProxy: number): string {
  if (trustProxy > 0) {
    const hops = (headers.get("x-forwarded-for") ?? "")
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part !== "");
    // Fewer entries than proxies: the outermost proxy added none; take the leftmost it passed on.
    const entry = hops.length >= trustProxy ? hops[hops.length - trustProxy] : hops[0];
    return normaliseAddress(entry);
  }
  if (!peerAddressStamped()) return UNKNOWN_ADDRESS;
  return normaliseAddress(headers.get(PEER_ADDRESS_HEADER) ?? undefined);
}

/** An IP address in its usual text form, or UNKNOWN_ADDRESS. */
export function normaliseAddress(text: string | undefined): string {
  if (!text) return UNKNOWN_ADDRESS;
  // "[::1]:1234" and "10.0.0.1:1234" (some proxies add the port).
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(text);
  const bare = bracketed?.[1] ?? v4WithPort?.[1] ?? text;
  if (!ipaddr.isValid(bare)) return UNKNOWN_ADDRESS;
  const address = ipaddr.process(bare);
  return address.kind() === "ipv6" ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
}

/**
 * The budget an address draws from: the address itself for IPv4, its /64
 * network for IPv6 (one subscriber usually holds a whole /64, so counting
 * single IPv6 addresses would let one client take 2^64 budgets).
 */
export function addressBucket(address: string): string {
  if (address === UNKNOWN_ADDRESS || !ipaddr.isValid(address)) return UNKNOWN_ADDRESS;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === "ipv4") return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toRFC5952String()}/64`;
}
