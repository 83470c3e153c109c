// docs/metrics.md lists each plain channel's message fields; the relay-round row must name every
// field a real round publishes (a dashboard built from the doc misses the consumer-acknowledged re-sends).
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PGlite } from "@electric-sql/pglite";
import { events, type RelayRoundEvent } from "../../src/metrics/index.js";
import { OutboxRelay, PostgresOutbox, transaction } from "../../src/outbox/index.js";
import type { SqlClient } from "../../src/internal/sql.js";
import { recordEvents } from "../metrics/support.js";

let lite: PGlite;
let db: SqlClient;
beforeAll(async () => {
  lite = new PGlite();
  await lite.waitReady;
  db = lite as unknown as SqlClient;
});
afterAll(async () => {
  await lite?.close();
});

/** The backticked names in the "message" column of the docs row of `name`. */
function documentedFields(name: string): string[] {
  const row = readFileSync(new URL("../../docs/metrics.md", import.meta.url), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`| \`${name}\``));
  if (row === undefined) throw new Error(`no docs row for ${name}`);
  const message = row.split("|")[3]!;
  return [...message.matchAll(/`([a-zA-Z]+)`/g)].map((m) => m[1]!).sort();
}

describe("review-b: docs/metrics.md relay-round payload", () => {
  it("names every field a relay round publishes", async () => {
    const outbox = new PostgresOutbox(db, { table: "ob_review_b" });
    await outbox.migrate();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "m1", payload: 1 }));
    const relay = new OutboxRelay(outbox, { publish: async () => {}, ackTimeoutMs: 60_000 });
    const rounds = recordEvents<RelayRoundEvent>(events.relayRound);
    try {
      await relay.runOnce();
    } finally {
      rounds.stop();
    }
    expect(rounds.messages).toHaveLength(1);
    expect(documentedFields(events.relayRound)).toEqual(Object.keys(rounds.messages[0]!).sort());
  });
});
