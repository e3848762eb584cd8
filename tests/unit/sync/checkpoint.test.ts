import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CheckpointSealer, comparePositions, type FeedPosition, type Position } from "@/lib/sync/checkpoint";
import { MAX_CHECKPOINT_LENGTH } from "@/lib/sync/protocol";

const sealer = new CheckpointSealer(randomBytes(32));
const scope = { system: "crm", collection: "customers" };

const seqArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
// xid8 is a full unsigned 64-bit number.
const pArb: fc.Arbitrary<Position> = fc.record({ xid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), seq: seqArb });
const positionArb: fc.Arbitrary<FeedPosition> = fc.record({
  at: pArb,
  run: fc.option(fc.record({ start: pArb, origin: fc.option(pArb, { nil: null }) }), { nil: null }),
});
const at = (seq: number, xid = 7n): FeedPosition => ({ at: { xid, seq }, run: null });

describe("sealed checkpoints", () => {
  it("open to the position they seal, for any position", () => {
    fc.assert(
      fc.property(positionArb, (position) => {
        const text = sealer.seal(scope, position);
        expect(text.length).toBeLessThanOrEqual(MAX_CHECKPOINT_LENGTH);
        expect(sealer.open(scope, text)).toEqual({ ok: true, position });
      }),
    );
  });

  it("reveal nothing: every checkpoint has the same length, and sealing one position twice gives two strings", () => {
    const small = sealer.seal(scope, at(1));
    const large = sealer.seal(scope, { at: { xid: 2n ** 64n - 1n, seq: Number.MAX_SAFE_INTEGER }, run: { start: { xid: 9n, seq: 5 }, origin: { xid: 3n, seq: 3 } } });
    expect(small).toHaveLength(large.length);
    expect(sealer.seal(scope, at(1))).not.toBe(small);
  });

  it("are bound to the system, the collection and the key", () => {
    const text = sealer.seal(scope, at(42));
    expect(sealer.open({ system: "billing", collection: "customers" }, text)).toEqual({ ok: false, reason: "stale" });
    expect(sealer.open({ system: "crm", collection: "orders" }, text)).toEqual({ ok: false, reason: "stale" });
    expect(new CheckpointSealer(randomBytes(32)).open(scope, text)).toEqual({ ok: false, reason: "stale" });
  });

  it("refuse any altered character", () => {
    const text = sealer.seal(scope, at(42));
    fc.assert(
      fc.property(fc.integer({ min: 2, max: text.length - 1 }), fc.constantFrom(..."ABCxyz019-_"), (at, char) => {
        fc.pre(text[at] !== char);
        const altered = text.slice(0, at) + char + text.slice(at + 1);
        expect(sealer.open(scope, altered).ok).toBe(false);
      }),
    );
  });

  it("tell an older hub's checkpoints (resync) from strings that are no checkpoint (bad request)", () => {
    // Plain `s<seq>`, and `c1`: sealed sequence numbers from before feed positions.
    for (const legacy of ["s0", "s42", "s42.7", "s42.7.3", "c1" + "A".repeat(70)]) {
      expect(sealer.open(scope, legacy)).toEqual({ ok: false, reason: "stale" });
    }
    for (const junk of ["", "c1", "c2", "x", "s-1", "c2!!!!", "s01", "c1" + "A".repeat(69), "c2" + "A".repeat(70)]) {
      expect(sealer.open(scope, junk)).toEqual({ ok: false, reason: "malformed" });
    }
  });
});

describe("positions", () => {
  it("compare by xid, then by seq", () => {
    expect(comparePositions({ xid: 1n, seq: 99 }, { xid: 2n, seq: 1 })).toBe(-1);
    expect(comparePositions({ xid: 2n, seq: 1 }, { xid: 2n, seq: 1 })).toBe(0);
    expect(comparePositions({ xid: 2n, seq: 2 }, { xid: 2n, seq: 1 })).toBe(1);
  });
});
