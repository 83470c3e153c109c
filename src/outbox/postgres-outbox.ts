// PostgresOutbox: the message-send table. Messages are written in the caller's business transaction, so a
// message exists if and only if that transaction committed; OutboxRelay delivers them afterwards.
import { createHash, randomUUID } from "node:crypto";
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { runMigration, sqlRows, type SqlClient } from "../internal/sql.js";
import { optionKeys, validateInt, validateOptions } from "../internal/validate.js";
import { deleteOlderThan, type DeleteOlderOptions } from "./cleanup.js";
import { checkTableName, tableSchema } from "./sql-names.js";
import { checkSqlClient, checkTransactionClient, ownStatements } from "./transaction.js";
import {
  MESSAGE_COLUMNS,
  toRecord,
  type MessageRow,
  type OutboxRecord,
  type OutboxStatus,
} from "./records.js";
import { payloadJson, validateMessageId, validateTopic } from "./types.js";

export type { OutboxRecord, OutboxStatus };

/** Options of `new PostgresOutbox()`. */
export interface PostgresOutboxOptions {
  /**
   * The table, optionally schema-qualified (`app.outbox`); indexes are named after it.
   * @default "fsk_outbox"
   */
  readonly table?: string;
  /**
   * Send `pg_notify(<channel>, topic)` with every message enqueued due now, so that relays started with a
   * `listen` client wake up at commit instead of at their next poll. Off by default: NOTIFY serialises
   * committing transactions on a global lock, which costs at high write rates.
   * @default false
   */
  readonly notify?: boolean;
}

const KNOWN = optionKeys<PostgresOutboxOptions>({ table: 1, notify: 1 });

/** What to enqueue. */
export interface EnqueueInput {
  readonly topic: string;
  /** Optional partition / routing key (at most 1000 characters). */
  readonly key?: string | null;
  /** Any JSON-serialisable value; stored as jsonb. */
  readonly payload: unknown;
  /**
   * The message id, and its idempotency key: enqueueing an id that already exists changes nothing and answers
   * `duplicate: true`. Omitted: a random UUID.
   */
  readonly id?: string;
  /** Deliver no earlier than this epoch ms (compared with the database's clock). Not with `delayMs`. */
  readonly availableAt?: number;
  /** Deliver no earlier than `now() + delayMs`, by the database's clock. Not with `availableAt`. */
  readonly delayMs?: number;
}

const ENQUEUE_KEYS = optionKeys<EnqueueInput>({
  topic: 1,
  key: 1,
  payload: 1,
  id: 1,
  availableAt: 1,
  delayMs: 1,
});

/** The outcome of `enqueue`. */
export interface EnqueueResult {
  readonly id: string;
  /** A message with this id already existed; nothing was written. */
  readonly duplicate: boolean;
}

/** Counts of messages by status (`stats()`). */
export interface OutboxStats {
  readonly pending: number;
  readonly sent: number;
  /** Acknowledged by a consumer's inbox (consumer-acknowledged mode). */
  readonly processed: number;
  readonly dead: number;
}

/**
 * The outbox schema (table and indexes) for a table name. Run it with your migration tool, or call
 * {@link PostgresOutbox.migrate}.
 *
 * @example
 * ```ts
 * await fs.writeFile("migrations/002_outbox.sql", outboxSchema("app.outbox"));
 * ```
 */
export function outboxSchema(table = "fsk_outbox"): string {
  return tableSchema("outbox/outbox", table);
}

/**
 * The transactional outbox on PostgreSQL 13+ or PGlite: `enqueue` writes a message in the caller's business
 * transaction, so it exists if and only if that transaction commits; an {@link OutboxRelay} then delivers it
 * at least once, with retries, a dead-letter state and delayed delivery.
 *
 * It takes any client with `query(sql, params)` (`pg.Pool`, `pg.Client`, PGlite) for its own statements
 * (claims, marks, listings); `enqueue` runs on the transaction client you pass. Its own statements never run
 * inside one of your transactions: on a single connection (`pg.Client`, a checked-out `pg.PoolClient`) they
 * queue behind the {@link transaction} open on it, so a relay sharing the connection with your business code
 * sees a message only once its transaction committed (and waits meanwhile). Calling them from inside such a
 * transaction throws {@link InvalidArgumentError} (they would wait for themselves). Prefer a pool: one
 * connection means one statement at a time for the relay and your business code together.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { PostgresOutbox, transaction } from "flash-sale-kit/outbox";
 *
 * const db = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const outbox = new PostgresOutbox(db);
 * await outbox.migrate();
 * await transaction(db, async (tx) => {
 *   await tx.query("INSERT INTO orders (id, sku) VALUES ($1, $2)", ["o1", "iphone-17"]);
 *   await outbox.enqueue(tx, { topic: "order-created", key: "o1", payload: { orderId: "o1" } });
 * });
 * ```
 */
export class PostgresOutbox {
  /** The table name in use. */
  readonly table: string;
  /**
   * The LISTEN/NOTIFY channel relays listen on: the table's name with `.` turned into `_`, or, when that is
   * longer than PostgreSQL's 63-byte limit, `fsk_outbox_` and a hash of the name.
   */
  readonly channel: string;
  /** Whether `enqueue` sends a NOTIFY. */
  readonly notify: boolean;
  /** `db`, kept out of the caller's transactions (see {@link ownStatements}). */
  private readonly own: SqlClient;

  constructor(
    /** The client the outbox runs its own statements on (claims, marks, listings). */
    readonly db: SqlClient,
    options: PostgresOutboxOptions = {},
  ) {
    validateOptions("options", options, { known: KNOWN });
    checkSqlClient("db", db);
    this.own = ownStatements("PostgresOutbox", db);
    this.table = checkTableName("table", options.table ?? "fsk_outbox");
    // PostgreSQL channel names stop at 63 bytes (longer: NOTIFY fails, LISTEN truncates).
    const plain = this.table.replace(".", "_");
    this.channel =
      plain.length <= 63
        ? plain
        : `fsk_outbox_${createHash("sha256").update(this.table).digest("hex").slice(0, 40)}`;
    if (options.notify !== undefined && typeof options.notify !== "boolean") {
      throw new InvalidArgumentError("notify", "must be a boolean");
    }
    this.notify = options.notify ?? false;
  }

  /**
   * Creates the table and its indexes if missing. Idempotent.
   *
   * @example
   * ```ts
   * await outbox.migrate();
   * ```
   */
  async migrate(): Promise<void> {
    await runMigration(this.own, outboxSchema(this.table));
  }

  /**
   * Writes a message inside the caller's transaction: pass the transaction's client (from
   * {@link transaction}), and the message commits or rolls back with the business change. Delivery starts
   * at `availableAt` / `now() + delayMs` (database time), or at once.
   *
   * @example
   * ```ts
   * await transaction(db, async (tx) => {
   *   await tx.query("INSERT INTO orders (id) VALUES ($1)", [orderId]);
   *   await outbox.enqueue(tx, {
   *     topic: "payment-timeout",
   *     id: `payment-timeout:${orderId}`,
   *     payload: { orderId },
   *     delayMs: 15 * 60_000,
   *   });
   * });
   * ```
   */
  async enqueue(tx: SqlClient, input: EnqueueInput): Promise<EnqueueResult> {
    checkTransactionClient("tx", tx);
    validateOptions("input", input, { required: true, known: ENQUEUE_KEYS });
    validateTopic("topic", input.topic);
    const key = input.key ?? null;
    if (key !== null && (typeof key !== "string" || key.length > 1000)) {
      throw new InvalidArgumentError("key", "must be a string of at most 1000 characters");
    }
    const id = input.id ?? randomUUID();
    validateMessageId("id", id);
    const payload = payloadJson(input.payload);
    if (input.availableAt !== undefined && input.delayMs !== undefined) {
      throw new InvalidArgumentError("delayMs", "cannot be combined with availableAt");
    }
    validateInt("availableAt", input.availableAt ?? 0, { min: 0 });
    validateInt("delayMs", input.delayMs ?? 0, { min: 0 });

    let due = "now()";
    const params: unknown[] = [id, input.topic, key, payload];
    if (input.availableAt !== undefined) {
      params.push(input.availableAt);
      due = "to_timestamp($5::float8 / 1000)";
    } else if (input.delayMs) {
      params.push(input.delayMs);
      due = "now() + $5::float8 * interval '1 millisecond'";
    }
    const rows = await sqlRows<{ id: string }>(
      tx,
      `INSERT INTO ${this.table} (id, topic, key, payload, available_at)
       VALUES ($1, $2, $3, $4::jsonb, ${due})
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      params,
    );
    const duplicate = rows.length === 0;
    if (!duplicate && this.notify && input.availableAt === undefined && !input.delayMs) {
      await sqlRows(tx, "SELECT 1 AS ok FROM pg_notify($1, $2)", [this.channel, input.topic]);
    }
    return { id, duplicate };
  }

  /**
   * Reads one message with its delivery state, or `null`.
   *
   * @example
   * ```ts
   * const m = await outbox.get(id); // { status: "sent", attempts: 1, … }
   * ```
   */
  async get<P = unknown>(id: string): Promise<OutboxRecord<P> | null> {
    validateMessageId("id", id);
    const [row] = await sqlRows<MessageRow>(
      this.own,
      `SELECT ${MESSAGE_COLUMNS} FROM ${this.table} WHERE id = $1`,
      [id],
    );
    return row === undefined ? null : toRecord<P>(row);
  }

  /**
   * Lists dead messages (attempts used up), oldest death first.
   *
   * @example
   * ```ts
   * for (const m of await outbox.listDead({ limit: 50 })) console.log(m.id, m.attempts, m.lastError);
   * ```
   */
  async listDead<P = unknown>(
    options: { readonly limit?: number; readonly topic?: string } = {},
  ): Promise<OutboxRecord<P>[]> {
    validateOptions("options", options, { known: ["limit", "topic"] });
    const limit = options.limit ?? 100;
    validateInt("limit", limit, { min: 1, max: 100_000 });
    if (options.topic !== undefined) validateTopic("topic", options.topic);
    const rows = await sqlRows<MessageRow>(
      this.own,
      `SELECT ${MESSAGE_COLUMNS} FROM ${this.table}
       WHERE status = 'dead' AND ($2::text IS NULL OR topic = $2)
       ORDER BY dead_at, seq LIMIT $1`,
      [limit, options.topic ?? null],
    );
    return rows.map((r) => toRecord<P>(r));
  }

  /**
   * Puts a dead message back in line: pending, due now, attempts reset to 0 (its last error is kept until
   * the next attempt). Returns `false` when no dead message has this id.
   *
   * @example
   * ```ts
   * await outbox.retryDead(id); // after fixing what made it fail
   * ```
   */
  async retryDead(id: string): Promise<boolean> {
    validateMessageId("id", id);
    const rows = await sqlRows(
      this.own,
      `UPDATE ${this.table} SET status = 'pending', attempts = 0, available_at = now(), dead_at = NULL,
         claimed_by = NULL
       WHERE id = $1 AND status = 'dead' RETURNING id`,
      [id],
    );
    return rows.length === 1;
  }

  /**
   * Deletes sent messages older than `olderThanMs` (by `sent_at`, database time) and processed ones older
   * than that (by `processed_at`), at most `limit` of each per call; returns how many. Several callers may
   * run at once. In consumer-acknowledged mode a sent row is one still waiting for its acknowledgement: keep
   * `olderThanMs` well above the relay's `ackTimeoutMs` (a relay in that mode deletes processed rows only).
   *
   * @example
   * ```ts
   * await outbox.deleteSent({ olderThanMs: 7 * 24 * 3600_000 });
   * ```
   */
  async deleteSent(options: DeleteOlderOptions): Promise<number> {
    const sent = await deleteOlderThan(
      this.own,
      { name: this.table, key: "id", column: "sent_at", where: "status = 'sent'" },
      options,
    );
    return sent + (await this.deleteProcessed(options));
  }

  /** Deletes processed messages older than `olderThanMs` (by `processed_at`). @internal */
  deleteProcessed(options: DeleteOlderOptions): Promise<number> {
    return deleteOlderThan(
      this.own,
      { name: this.table, key: "id", column: "processed_at", where: "status = 'processed'" },
      options,
    );
  }

  /**
   * Inside the consumer's transaction `tx` (on this outbox's database): marks the message `processed`, so
   * that a relay in consumer-acknowledged mode (`ackTimeoutMs`) stops re-sending it. A message not yet
   * marked sent (the consumer was faster than the relay's mark) and a dead one (a late delivery was applied
   * after all) become processed too. Returns whether this call changed the row (`false`: already processed,
   * or no message has this id). {@link PostgresInbox} calls it for you when built with `{ outbox }`.
   *
   * @example
   * ```ts
   * await transaction(db, async (tx) => {
   *   await tx.query("INSERT INTO shipments (order_id) VALUES ($1)", [m.payload.orderId]);
   *   await outbox.acknowledge(tx, m.id);
   * });
   * ```
   */
  async acknowledge(tx: SqlClient, id: string): Promise<boolean> {
    checkTransactionClient("tx", tx);
    validateMessageId("id", id);
    const rows = await sqlRows(
      tx,
      `UPDATE ${this.table} SET status = 'processed', processed_at = now(),
         sent_at = coalesce(sent_at, now()), dead_at = NULL, claimed_by = NULL
       WHERE id = $1 AND status <> 'processed' RETURNING 1 AS ok`,
      [id],
    );
    return rows.length === 1;
  }

  /**
   * Counts messages by status.
   *
   * @example
   * ```ts
   * const { pending, dead } = await outbox.stats();
   * ```
   */
  async stats(): Promise<OutboxStats> {
    const rows = await sqlRows<{ status: OutboxStatus; n: number }>(
      this.own,
      `SELECT status, count(*)::int AS n FROM ${this.table} GROUP BY status`,
    );
    const out = { pending: 0, sent: 0, processed: 0, dead: 0 };
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  }

  /**
   * Claims up to `limit` due messages for one relay round: each gets one more attempt and a lease (its
   * `available_at` moves to `now() + leaseMs`, so a relay that dies mid-round lets them come back). Rows
   * whose attempts are already used up (their last attempt's relay died) are marked dead instead.
   * @internal
   */
  async claim(
    claimId: string,
    limit: number,
    leaseMs: number,
    maxAttempts: number,
    topics: readonly string[] | null,
  ): Promise<(MessageRow & { status: OutboxStatus })[]> {
    const rows = await sqlRows<MessageRow>(
      this.own,
      `WITH due AS (
         SELECT id FROM ${this.table}
         WHERE status = 'pending' AND available_at <= now() AND ($5::text[] IS NULL OR topic = ANY($5::text[]))
         ORDER BY available_at, seq
         LIMIT $1
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.table} AS o SET
         attempts = CASE WHEN o.attempts >= $3 THEN o.attempts ELSE o.attempts + 1 END,
         status = CASE WHEN o.attempts >= $3 THEN 'dead' ELSE 'pending' END,
         dead_at = CASE WHEN o.attempts >= $3 THEN now() END,
         last_error = CASE WHEN o.attempts >= $3
           THEN 'attempt ' || o.attempts || ' did not finish within the lease (the relay stopped or publish hung)'
           ELSE o.last_error END,
         available_at = CASE WHEN o.attempts >= $3 THEN o.available_at
           ELSE now() + $2::float8 * interval '1 millisecond' END,
         claimed_by = CASE WHEN o.attempts >= $3 THEN NULL ELSE $4 END
       FROM due WHERE o.id = due.id
       RETURNING o.id, o.topic, o.key, o.payload, o.status, o.attempts, o.seq,
         (extract(epoch FROM o.created_at) * 1000)::float8 AS created_ms`,
      [limit, leaseMs, maxAttempts, claimId, topics],
    );
    for (const r of rows) {
      if (r.seq === undefined) throw new UnexpectedReplyError("outbox claim returned a row without seq");
    }
    return rows.sort((a, b) => Number(a.seq) - Number(b.seq)) as (MessageRow & { status: OutboxStatus })[];
  }

  /**
   * Consumer-acknowledged mode: puts messages sent more than `ackTimeoutMs` ago and still not processed
   * back in line (due now, for the next claim), or marks them dead when their attempts are used up.
   * Returns how many were requeued and how many died. @internal
   */
  async requeueUnacknowledged(
    ackTimeoutMs: number,
    limit: number,
    maxAttempts: number,
    topics: readonly string[] | null,
  ): Promise<{ requeued: number; dead: number }> {
    const rows = await sqlRows<{ status: OutboxStatus }>(
      this.own,
      `WITH late AS (
         SELECT id FROM ${this.table}
         WHERE status = 'sent' AND sent_at <= now() - $1::float8 * interval '1 millisecond'
           AND ($4::text[] IS NULL OR topic = ANY($4::text[]))
         ORDER BY sent_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.table} AS o SET
         status = CASE WHEN o.attempts >= $3 THEN 'dead' ELSE 'pending' END,
         dead_at = CASE WHEN o.attempts >= $3 THEN now() END,
         available_at = now(),
         last_error = 'attempt ' || o.attempts || ' was accepted by the transport but no consumer acknowledged it within '
           || $1 || ' ms',
         claimed_by = NULL
       FROM late WHERE o.id = late.id
       RETURNING o.status`,
      [ackTimeoutMs, limit, maxAttempts, topics],
    );
    const dead = rows.filter((r) => r.status === "dead").length;
    return { requeued: rows.length - dead, dead };
  }

  /** Marks published messages sent. @internal */
  async markSent(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await sqlRows(
      this.own,
      `UPDATE ${this.table} SET status = 'sent', sent_at = now(), claimed_by = NULL
       WHERE id = ANY($1::text[]) AND status = 'pending'`,
      [ids],
    );
  }

  /**
   * Records a failed attempt: dead when `attempts >= maxAttempts`, else due again at `now() + delayMs`
   * (database time). Only while the claim is still this relay's. Returns the new status, or null when the
   * claim was lost. @internal
   */
  async markFailed(
    id: string,
    claimId: string,
    error: string,
    maxAttempts: number,
    delayMs: number,
  ): Promise<OutboxStatus | null> {
    const [row] = await sqlRows<{ status: OutboxStatus }>(
      this.own,
      `UPDATE ${this.table} SET
         last_error = $3,
         status = CASE WHEN attempts >= $4 THEN 'dead' ELSE 'pending' END,
         dead_at = CASE WHEN attempts >= $4 THEN now() END,
         available_at = CASE WHEN attempts >= $4 THEN available_at
           ELSE now() + $5::float8 * interval '1 millisecond' END,
         claimed_by = NULL
       WHERE id = $1 AND claimed_by = $2 AND status = 'pending'
       RETURNING status`,
      [id, claimId, error, maxAttempts, delayMs],
    );
    return row?.status ?? null;
  }

  /**
   * Gives back claimed messages this relay did not attempt (its round ran out of lease): due at once, for
   * any relay, and their claim does not count as an attempt. @internal
   */
  async unclaim(ids: readonly string[], claimId: string): Promise<void> {
    if (ids.length === 0) return;
    await sqlRows(
      this.own,
      `UPDATE ${this.table} SET attempts = attempts - 1, available_at = now(), claimed_by = NULL
       WHERE id = ANY($1::text[]) AND claimed_by = $2 AND status = 'pending'`,
      [ids, claimId],
    );
  }
}
