import { describe, expect, it } from "vitest";
import { FALLBACK_STRATEGIES, STRATEGIES as STRATEGY_NAMES, type FallbackStrategy } from "@/lib/policy/document";
import type { JsonObject } from "@/lib/sync/protocol";
import { effectiveModifiedAt, STRATEGIES, type ConflictCase, type Settlement } from "@/lib/sync/strategies";

/**
 * Each strategy of policy.md as the pure unit in lib/sync/strategies.ts:
 * `STRATEGIES[name](case)`. The push engine (tests/integration/strategies.test.ts)
 * turns the settlement into a status, a version and a conflict-log row.
 */

const T = new Date("2026-11-25T10:00:00.000Z");
const later = (ms: number) => new Date(T.getTime() + ms);

/** Base {a:1, b:1}; the server changed a, the client changed b. */
function conflict(over: Partial<ConflictCase> = {}): ConflictCase {
  return {
    base: { a: 1, b: 1 },
    server: { a: 2, b: 1 },
    client: { a: 1, b: 2 },
    clientSystem: "crm",
    serverSystem: "billing",
    clientPriority: 0,
    serverPriority: 0,
    clientModifiedAt: T,
    serverModifiedAt: T,
    fallback: "manual",
    ...over,
  };
}

/** The same case with the client deleting (the server updated) and with the server deleted (the client updated). */
const deleteCases = (over: Partial<ConflictCase> = {}): [string, ConflictCase][] => [
  ["client deletes, server updated", conflict({ ...over, client: null })],
  ["server deleted, client updates", conflict({ ...over, server: null })],
];

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const winner = (s: Settlement) => s.winner;

describe("the table of strategies", () => {
  it("has exactly the strategies of policy.md, and field-merge may fall back to every other one", () => {
    expect(Object.keys(STRATEGIES).sort()).toEqual([...STRATEGY_NAMES].sort());
    expect([...FALLBACK_STRATEGIES].sort()).toEqual(STRATEGY_NAMES.filter((s) => s !== "field-merge").sort());
  });

  it.each(STRATEGY_NAMES)("%s is pure: it never changes its inputs and answers the same twice", (name) => {
    const c = deepFreeze(
      conflict({
        base: { a: 1, o: { x: 1, y: [1] } },
        server: { a: 2, o: { x: 2, y: [1] } },
        client: { a: 3, o: { x: 1, y: [2] } },
        fallback: "server-wins",
      }),
    );
    const first = STRATEGIES[name](c);
    expect(STRATEGIES[name](c)).toEqual(first);
  });
});

describe("server-wins", () => {
  const settle = STRATEGIES["server-wins"];
  it("keeps the server's copy for update against update", () => {
    expect(settle(conflict())).toEqual({ winner: "server", details: {} });
  });
  it.each(deleteCases())("keeps the server's copy for delete against update (%s)", (_n, c) => {
    expect(winner(settle(c))).toBe("server");
  });
  it("ignores priorities and times", () => {
    expect(winner(settle(conflict({ clientPriority: 99, clientModifiedAt: later(60_000) })))).toBe("server");
  });
});

describe("client-wins", () => {
  const settle = STRATEGIES["client-wins"];
  it("takes the client's change for update against update", () => {
    expect(settle(conflict())).toEqual({ winner: "client", details: {} });
  });
  it.each(deleteCases())("takes the client's change for delete against update (%s)", (_n, c) => {
    expect(winner(settle(c))).toBe("client");
  });
  it("ignores priorities and times", () => {
    expect(winner(settle(conflict({ serverPriority: 99, serverModifiedAt: later(60_000) })))).toBe("client");
  });
});

describe("manual", () => {
  const settle = STRATEGIES.manual;
  it.each([["update against update", conflict()] as [string, ConflictCase], ...deleteCases()])(
    "holds the change for an operator (%s)",
    (_n, c) => {
      expect(settle(c)).toEqual({ winner: "pending", details: {} });
    },
  );
});

describe("last-writer-wins", () => {
  const settle = STRATEGIES["last-writer-wins"];

  it("a later client modification wins, and the times compared are in the details", () => {
    expect(settle(conflict({ clientModifiedAt: later(1), serverModifiedAt: T }))).toEqual({
      winner: "client",
      details: { clientModifiedAt: "2026-11-25T10:00:00.001Z", serverModifiedAt: "2026-11-25T10:00:00.000Z" },
    });
  });

  it("an earlier client modification loses", () => {
    expect(winner(settle(conflict({ clientModifiedAt: T, serverModifiedAt: later(1) })))).toBe("server");
  });

  it("a tie keeps the server's copy", () => {
    expect(winner(settle(conflict({ clientModifiedAt: new Date(T), serverModifiedAt: new Date(T) })))).toBe("server");
  });

  it.each(deleteCases())("decides delete against update by time too (%s)", (_n, c) => {
    expect(winner(settle({ ...c, clientModifiedAt: later(5) }))).toBe("client");
    expect(winner(settle({ ...c, serverModifiedAt: later(5) }))).toBe("server");
  });

  it("ignores priorities", () => {
    expect(winner(settle(conflict({ clientPriority: 99, serverModifiedAt: later(1) })))).toBe("server");
  });
});

describe("effectiveModifiedAt (the clock-skew rule of last-writer-wins)", () => {
  const arrival = new Date("2026-11-25T12:00:00.000Z");

  it("a change without modifiedAt counts as modified when it arrived", () => {
    expect(effectiveModifiedAt(undefined, arrival)).toEqual(arrival);
  });

  it("a time in the past is taken as claimed, offsets included", () => {
    expect(effectiveModifiedAt("2026-11-25T11:59:59.250Z", arrival)).toEqual(new Date("2026-11-25T11:59:59.250Z"));
    expect(effectiveModifiedAt("2026-11-25T13:30:00+02:00", arrival)).toEqual(new Date("2026-11-25T11:30:00.000Z"));
  });

  it("a time equal to arrival is kept", () => {
    expect(effectiveModifiedAt(arrival.toISOString(), arrival)).toEqual(arrival);
  });

  it("a client clock running ahead is capped at arrival", () => {
    expect(effectiveModifiedAt("2100-01-01T00:00:00Z", arrival)).toEqual(arrival);
    expect(effectiveModifiedAt("2026-11-25T12:00:00.001Z", arrival)).toEqual(arrival);
  });

  it("so a fast clock cannot win every conflict: an honest later change beats it", () => {
    // System A claims the year 2100 and arrives at 12:00; its copy is stored as modified at 12:00.
    const stored = effectiveModifiedAt("2100-01-01T00:00:00Z", arrival);
    // System B edited at 12:00:05 (from the same base) and arrives at 12:00:10.
    const honest = effectiveModifiedAt("2026-11-25T12:00:05Z", new Date("2026-11-25T12:00:10Z"));
    const settled = STRATEGIES["last-writer-wins"](conflict({ serverModifiedAt: stored, clientModifiedAt: honest }));
    expect(settled.winner).toBe("client");
    // And the fast clock, pushing second against an honest copy modified later than its arrival, loses.
    const fast = effectiveModifiedAt("2100-01-01T00:00:00Z", arrival);
    expect(STRATEGIES["last-writer-wins"](conflict({ serverModifiedAt: later(2 * 3600_000 + 1), clientModifiedAt: fast })).winner).toBe(
      "server",
    );
  });

  it("a change without modifiedAt beats a copy modified before it arrived, and ties with one modified at the same instant", () => {
    const settle = STRATEGIES["last-writer-wins"];
    expect(settle(conflict({ clientModifiedAt: effectiveModifiedAt(undefined, arrival), serverModifiedAt: new Date(arrival.getTime() - 1) })).winner).toBe("client");
    expect(settle(conflict({ clientModifiedAt: effectiveModifiedAt(undefined, arrival), serverModifiedAt: new Date(arrival) })).winner).toBe("server");
  });
});

describe("priority", () => {
  const settle = STRATEGIES.priority;

  it("the higher client priority wins, and the priorities are in the details", () => {
    expect(settle(conflict({ clientPriority: 20, serverPriority: 10 }))).toEqual({
      winner: "client",
      details: { clientPriority: 20, serverPriority: 10 },
    });
  });

  it("a lower client priority loses", () => {
    expect(winner(settle(conflict({ clientPriority: 10, serverPriority: 20 })))).toBe("server");
    expect(winner(settle(conflict({ clientPriority: -5, serverPriority: 0 })))).toBe("server");
    expect(winner(settle(conflict({ clientPriority: 0, serverPriority: -5 })))).toBe("client");
  });

  it("a tie keeps the server's copy", () => {
    expect(winner(settle(conflict({ clientPriority: 10, serverPriority: 10 })))).toBe("server");
  });

  it("a copy written by an operator (serverPriority null) is never overridden", () => {
    expect(settle(conflict({ clientPriority: 1_000_000, serverPriority: null }))).toEqual({
      winner: "server",
      details: { clientPriority: 1_000_000, serverPriority: null },
    });
  });

  it.each(deleteCases())("decides delete against update by priority too (%s)", (_n, c) => {
    expect(winner(settle({ ...c, clientPriority: 2, serverPriority: 1 }))).toBe("client");
    expect(winner(settle({ ...c, clientPriority: 1, serverPriority: 2 }))).toBe("server");
  });

  it("ignores times", () => {
    expect(winner(settle(conflict({ clientPriority: 1, serverPriority: 2, clientModifiedAt: later(60_000) })))).toBe("server");
  });
});

describe("field-merge", () => {
  const settle = STRATEGIES["field-merge"];
  const merged = (s: Settlement): JsonObject => {
    if (s.winner !== "merged") throw new Error(`expected a merge, got ${s.winner}`);
    return s.data;
  };

  it("combines disjoint field changes, for every fallback", () => {
    for (const fallback of FALLBACK_STRATEGIES) {
      expect(settle(conflict({ fallback }))).toEqual({ winner: "merged", data: { a: 2, b: 2 }, details: { collisions: [] } });
    }
  });

  it("the same change on both sides is no collision", () => {
    const s = settle(conflict({ server: { a: 2, b: 3 }, client: { a: 1, b: 3 } }));
    expect(s).toEqual({ winner: "merged", data: { a: 2, b: 3 }, details: { collisions: [] } });
  });

  it("combines added and removed fields", () => {
    const s = settle(
      conflict({
        base: { a: 1, b: 1, c: 1 },
        server: { a: 1, b: 1, c: 1, s: "new" }, // the server added s
        client: { a: 1, c: 1, k: "new" }, // the client removed b and added k
      }),
    );
    expect(merged(s)).toEqual({ a: 1, c: 1, s: "new", k: "new" });
  });

  it("both sides removing the same field is no collision; removing a field the other side changed is one", () => {
    expect(settle(conflict({ base: { a: 1, b: 1 }, server: { a: 1 }, client: { a: 1 } }))).toMatchObject({
      winner: "merged",
      data: { a: 1 },
      details: { collisions: [] },
    });
    expect(settle(conflict({ base: { a: 1, b: 1 }, server: { a: 1, b: 2 }, client: { a: 1 } }))).toMatchObject({
      winner: "pending",
      details: { collisions: ["b"] },
    });
  });

  it("both sides adding the same field with different values collides", () => {
    expect(settle(conflict({ base: { a: 1 }, server: { a: 1, n: 1 }, client: { a: 1, n: 2 } }))).toMatchObject({
      winner: "pending",
      details: { collisions: ["n"] },
    });
  });

  it("merges nested objects per key", () => {
    const s = settle(
      conflict({
        base: { address: { city: "Oslo", zip: "0150", geo: { lat: 1, lon: 1 } } },
        server: { address: { city: "Bergen", zip: "0150", geo: { lat: 2, lon: 1 } } },
        client: { address: { city: "Oslo", zip: "5003", geo: { lat: 1, lon: 2 }, floor: 3 } },
      }),
    );
    expect(s).toEqual({
      winner: "merged",
      data: { address: { city: "Bergen", zip: "5003", geo: { lat: 2, lon: 2 }, floor: 3 } },
      details: { collisions: [] },
    });
  });

  it("reports a colliding nested field by its dotted path", () => {
    const s = settle(
      conflict({
        base: { address: { city: "Oslo", zip: "0150" } },
        server: { address: { city: "Bergen", zip: "0150" } },
        client: { address: { city: "Trondheim", zip: "7010" } },
        fallback: "server-wins",
      }),
    );
    expect(s).toEqual({
      winner: "merged",
      data: { address: { city: "Bergen", zip: "7010" } },
      details: { fallback: "server-wins", collisions: ["address.city"], collisionsWonBy: "server" },
    });
  });

  it("a nested object against a scalar is a collision of the whole field", () => {
    const s = settle(
      conflict({ base: { o: { x: 1 } }, server: { o: { x: 2 } }, client: { o: "flat" }, fallback: "client-wins" }),
    );
    expect(s).toMatchObject({ winner: "merged", data: { o: "flat" }, details: { collisions: ["o"], collisionsWonBy: "client" } });
  });

  it("treats arrays as values: one side's edit is taken, the same edit agrees, two different edits collide", () => {
    const base = { tags: ["a", "b"], other: 1 };
    expect(merged(settle(conflict({ base, server: { ...base, tags: ["a", "b", "c"] }, client: { ...base, other: 2 } })))).toEqual({
      tags: ["a", "b", "c"],
      other: 2,
    });
    expect(merged(settle(conflict({ base, server: { ...base, tags: ["b"] }, client: { ...base, tags: ["b"], other: 2 } })))).toEqual({
      tags: ["b"],
      other: 2,
    });
    // Appending different elements is not combined element-wise: arrays are values.
    const collide = settle(
      conflict({ base, server: { ...base, tags: ["a", "b", "s"] }, client: { ...base, tags: ["a", "b", "c"] }, fallback: "manual" }),
    );
    expect(collide).toMatchObject({ winner: "pending", details: { collisions: ["tags"] } });
  });

  describe("colliding fields go to the fallback, which picks the side for those fields only", () => {
    // a collides; the server also changed s, the client also changed k: those are combined whatever the fallback says.
    const base = { a: 1, s: 1, k: 1 };
    const server = { a: 2, s: 2, k: 1 };
    const client = { a: 3, s: 1, k: 3 };
    const serverSide = { a: 2, s: 2, k: 3 };
    const clientSide = { a: 3, s: 2, k: 3 };
    const cases: [string, Partial<ConflictCase>, JsonObject, JsonObject][] = [
      ["server-wins", { fallback: "server-wins" }, serverSide, { fallback: "server-wins", collisionsWonBy: "server" }],
      ["client-wins", { fallback: "client-wins" }, clientSide, { fallback: "client-wins", collisionsWonBy: "client" }],
      ["priority, client higher", { fallback: "priority", clientPriority: 2, serverPriority: 1 }, clientSide, { collisionsWonBy: "client", clientPriority: 2 }],
      ["priority, tie", { fallback: "priority", clientPriority: 1, serverPriority: 1 }, serverSide, { collisionsWonBy: "server" }],
      ["priority, operator's copy", { fallback: "priority", clientPriority: 9, serverPriority: null }, serverSide, { collisionsWonBy: "server" }],
      ["last-writer-wins, client later", { fallback: "last-writer-wins", clientModifiedAt: later(1) }, clientSide, { collisionsWonBy: "client" }],
      ["last-writer-wins, tie", { fallback: "last-writer-wins" }, serverSide, { collisionsWonBy: "server" }],
      ["last-writer-wins, server later", { fallback: "last-writer-wins", serverModifiedAt: later(1) }, serverSide, { collisionsWonBy: "server" }],
    ];
    it.each(cases)("%s", (_name, over, data, details) => {
      const s = settle(conflict({ base, server, client, ...over }));
      expect(s).toMatchObject({ winner: "merged", data, details: { collisions: ["a"], ...details } });
      expect(merged(s)).toEqual(data);
    });

    it("manual holds the whole change as pending", () => {
      expect(settle(conflict({ base, server, client, fallback: "manual" }))).toEqual({
        winner: "pending",
        details: { fallback: "manual", collisions: ["a"] },
      });
    });
  });

  it("with no base (the client created a record that exists), fields both sides hold differently collide", () => {
    const s = settle(conflict({ base: null, server: { a: 1, b: 1 }, client: { a: 1, b: 2, c: 3 }, fallback: "server-wins" }));
    expect(s).toEqual({
      winner: "merged",
      data: { a: 1, b: 1, c: 3 },
      details: { fallback: "server-wins", collisions: ["b"], collisionsWonBy: "server" },
    });
  });

  describe("delete against update has nothing to combine: the fallback settles it as a whole", () => {
    const expected: Record<FallbackStrategy, [Partial<ConflictCase>, Settlement["winner"]][]> = {
      "server-wins": [[{}, "server"]],
      "client-wins": [[{}, "client"]],
      manual: [[{}, "pending"]],
      priority: [
        [{ clientPriority: 2, serverPriority: 1 }, "client"],
        [{ clientPriority: 1, serverPriority: 1 }, "server"],
      ],
      "last-writer-wins": [
        [{ clientModifiedAt: later(1) }, "client"],
        [{}, "server"],
      ],
    };
    for (const fallback of FALLBACK_STRATEGIES) {
      for (const [over, win] of expected[fallback]) {
        it.each(deleteCases({ fallback, ...over }))(`fallback ${fallback} ${JSON.stringify(over)} → ${win} (%s)`, (_n, c) => {
          const s = settle(c);
          expect(s.winner).toBe(win);
          expect(s.details).toMatchObject({ fallback, reason: "delete-versus-update" });
          expect(s).not.toHaveProperty("data");
        });
      }
    }
  });
});
