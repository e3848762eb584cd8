import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CheckpointSealer, type FeedPosition } from "@/lib/sync/checkpoint";
import { MAX_CHECKPOINT_LENGTH } from "@/lib/sync/protocol";

const sealer = new CheckpointSealer(randomBytes(32));
const scope = { system: "crm", collection: "customers" };

const seqArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const positionArb: fc.Arbitrary<FeedPosition> = fc.record({
  seq: seqArb,
  run: fc.option(fc.record({ start: seqArb, origin: fc.option(seqArb, { nil: null }) }), { nil: null }),
});

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
    const small = sealer.seal(scope, { seq: 1, run: null });
    const large = sealer.seal(scope, { seq: Number.MAX_SAFE_INTEGER, run: { start: 5, origin: 3 } });
    expect(small).toHaveLength(large.length);
    expect(sealer.seal(scope, { seq: 1, run: null })).not.toBe(small);
  });

  it("are bound to the system, the collection and the key", () => {
    const text = sealer.seal(scope, { seq: 42, run: null });
    expect(sealer.open({ system: "billing", collection: "customers" }, text)).toEqual({ ok: false, reason: "stale" });
    expect(sealer.open({ system: "crm", collection: "orders" }, text)).toEqual({ ok: false, reason: "stale" });
    expect(new CheckpointSealer(randomBytes(32)).open(scope, text)).toEqual({ ok: false, reason: "stale" });
  });

  it("refuse any altered character", () => {
    const text = sealer.seal(scope, { seq: 42, run: null });
    fc.assert(
      fc.property(fc.integer({ min: 2, max: text.length - 1 }), fc.constantFrom(..."ABCxyz019-_"), (at, char) => {
        fc.pre(text[at] !== char);
        const altered = text.slice(0, at) + char + text.slice(at + 1);
        expect(sealer.open(scope, altered).ok).toBe(false);
      }),
    );
  });

  it("tell an older hub's plain checkpoints (resync) from strings that are no checkpoint (bad request)", () => {
    for (const legacy of ["s0", "s42", "s42.7", "s42.7.3"]) {
      expect(sealer.open(scope, legacy)).toEqual({ ok: false, reason: "stale" });
    }
    for (const junk of ["", "c1", "x", "s-1", "c1!!!!", "s01", "c1" + "A".repeat(69)]) {
      expect(sealer.open(scope, junk)).toEqual({ ok: false, reason: "malformed" });
    }
  });
});
