import { Server as HttpServer, type IncomingMessage } from "node:http";
import { Server as HttpsServer } from "node:https";
import { markPeerAddressStamped, peerAddressStamped, PEER_ADDRESS_HEADER } from "./client-address";

/**
 * Stamps every request this process's HTTP(S) servers receive with the
 * address of the connection's peer, as PEER_ADDRESS_HEADER, replacing any
 * such header the client sent. `next start` gives route handlers and server
 * actions the request headers but not the socket, and its own
 * X-Forwarded-For keeps a value the client made up; this stamp is what
 * clientAddress() reads when no proxy is trusted. Called once from
 * instrumentation.ts, before the first request; calling it again does
 * nothing.
 */
export function installPeerAddressHeader(): void {
  if (peerAddressStamped()) return;
  for (const prototype of [HttpServer.prototype, HttpsServer.prototype]) {
    const emit = prototype.emit;
    prototype.emit = function stampPeerAddress(this: HttpServer, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "request") {
        const request = args[0] as IncomingMessage;
        request.headers[PEER_ADDRESS_HEADER] = request.socket.remoteAddress ?? "";
      }
      return Reflect.apply(emit, this, [event, ...args]) as boolean;
    };
  }
  markPeerAddressStamped();
}
