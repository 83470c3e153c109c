// PostgresInbox: the message-process table. A consumer records each message it applies in the same
// transaction as the message's effect, so a redelivered message is recognised and applied once.
import { InvalidArgumentError } from "../errors.js";
import { runMigration, sqlRows, type SqlClient } from "../internal/sql.js";
import { optionKeys, validateId, validateOptions } from "../internal/validate.js";
import { deleteOlderThan, type DeleteOlderOptions } from "./cleanup.js";
import { checkTableName, tableSchema } from "./sql-names.js";
import { checkSqlClient, checkTransactionClient, ownStatements } from "./transaction.js";
import { validateMessageId } from "./types.js";
import type { PostgresOutbox } from "./postgres-outbox.js";
import { traced } from "../internal/trace.js";
import { channels, type ProcessTrace } from "../metrics/channels.js";

const PROCESS = traced<ProcessTrace>(channels.process);

/** Options of `new PostgresInbox()`. */
export interface PostgresInboxOptions {
  /**
   * The table, optionally schema-qualified; indexes are named after it.
   * @default "fsk_inbox"
   */
  readonly table?: string;
  /**
   * Consumer-acknowledged mode: the outbox (in this inbox's database) whose messages this inbox
   * acknowledges. `processOnce` then marks the message `processed` in that outbox in the same transaction
   * as the record and the effect ({@link PostgresOutbox.acknowledge}), so a relay with `ackTimeoutMs` stops
   * re-sending it, and re-sends a message whose delivery was lost. The `messageId` must then be the outbox
   * message id (`readStreamedMessage(entry).id`, `readRabbitMessage(msg).id`). A duplicate acknowledges too.
   * With several consumers of one message, give the outbox to the inbox of one of them only.
   */
  readonly outbox?: PostgresOutbox;
}

const KNOWN = optionKeys<PostgresInboxOptions>({ table: 1, outbox: 1 });

/** Which message, for which consumer. */
export interface InboxMessageRef {
  /** The consumer (a service, a handler): each consumer applies each message once. */
  readonly consumer: string;
  /** The message's id: an outbox message id, or a stream entry's `<stream>/<entry id>`. */
  readonly messageId: string;
}

/** `processed`: fn ran in this transaction; `duplicate`: this consumer had already processed the message. */
export type ProcessOutcome = "processed" | "duplicate";

/**
 * The inbox schema (table and index) for a table name.
 *
 * @example
 * ```ts
 * await fs.writeFile("migrations/003_inbox.sql", inboxSchema());
 * ```
 */
export function inboxSchema(table = "fsk_inbox"): string {
  return tableSchema("outbox/inbox", table);
}

/**
 * The inbox (message-process table) on PostgreSQL 13+ or PGlite: `processOnce` inserts `(consumer,
 * messageId)` and runs the message's effect in the same transaction, so the record and the effect commit
 * together or not at all, and a message delivered again is answered `duplicate` without running `fn`.
 * Two deliveries processed at the same moment serialise on the primary key: the second waits for the first
 * to commit (then it is a duplicate) or roll back (then it processes). Its own statements (`isProcessed`,
 * `deleteProcessed`, `migrate`) never join one of your transactions: on a single connection they wait for the
 * {@link transaction} open on it, like {@link PostgresOutbox}'s.
 *
 * @example
 * ```ts
 * import { PostgresInbox, transaction } from "flash-sale-kit/outbox";
 *
 * const inbox = new PostgresInbox(db);
 * await inbox.migrate();
 * const outcome = await transaction(db, (tx) =>
 *   inbox.processOnce(tx, { consumer: "orders", messageId: message.id }, async (tx) => {
 *     await tx.query("INSERT INTO orders (id) VALUES ($1)", [message.payload.orderId]);
 *   }),
 * ); // "processed" the first time, "duplicate" after
 * ```
 */
export class PostgresInbox {
  /** The table name in use. */
  readonly table: string;
  /** The outbox this inbox acknowledges messages of (consumer-acknowledged mode), if any. */
  readonly outbox: PostgresOutbox | undefined;
  /** `db`, kept out of the caller's transactions (see {@link ownStatements}). */
  private readonly own: SqlClient;

  constructor(db: SqlClient, options: PostgresInboxOptions = {}) {
    validateOptions("options", options, { known: KNOWN });
    checkSqlClient("db", db);
    this.own = ownStatements("PostgresInbox", db);
    this.table = checkTableName("table", options.table ?? "fsk_inbox");
    const outbox = options.outbox;
    if (outbox !== undefined && (outbox === null || typeof outbox.acknowledge !== "function")) {
      throw new InvalidArgumentError("outbox", "must be a PostgresOutbox");
    }
    this.outbox = outbox;
  }

  /**
   * Creates the table and its index if missing. Idempotent.
   *
   * @example
   * ```ts
   * await inbox.migrate();
   * ```
   */
  async migrate(): Promise<void> {
    await runMigration(this.own, inboxSchema(this.table));
  }

  /**
   * Inside the caller's transaction `tx`: records the message for the consumer and runs `fn(tx)`, or
   * answers `duplicate` (without running `fn`) when it was recorded before. Commit or roll back `tx` as one:
   * an error from `fn` propagates, and the caller's {@link transaction} rolls the record back with it.
   *
   * `tx` must be a transaction's client; a pool or a PGlite instance is refused, as their statements would
   * commit one by one.
   *
   * @example
   * ```ts
   * await transaction(db, (tx) =>
   *   inbox.processOnce(tx, { consumer: "payments", messageId: m.id }, (tx) => applyPayment(tx, m.payload)),
   * );
   * ```
   */
  processOnce(
    tx: SqlClient,
    ref: InboxMessageRef,
    fn: (tx: SqlClient) => Promise<unknown>,
  ): Promise<ProcessOutcome> {
    if (!PROCESS.active) return this.#processOnce(tx, ref, fn);
    const r = (typeof ref === "object" && ref !== null ? ref : {}) as Partial<InboxMessageRef>;
    const payload = { consumer: r.consumer as string, messageId: r.messageId as string };
    return PROCESS.trace(() => this.#processOnce(tx, ref, fn), payload);
  }

  async #processOnce(
    tx: SqlClient,
    ref: InboxMessageRef,
    fn: (tx: SqlClient) => Promise<unknown>,
  ): Promise<ProcessOutcome> {
    checkTransactionClient("tx", tx);
    if (typeof ref !== "object" || ref === null) {
      throw new InvalidArgumentError("ref", "must be an object with consumer and messageId");
    }
    validateId("consumer", ref.consumer);
    validateMessageId("messageId", ref.messageId);
    if (typeof fn !== "function") throw new InvalidArgumentError("fn", "must be a function");
    const rows = await sqlRows(
      tx,
      `INSERT INTO ${this.table} (consumer, message_id) VALUES ($1, $2)
       ON CONFLICT (consumer, message_id) DO NOTHING RETURNING 1 AS ok`,
      [ref.consumer, ref.messageId],
    );
    if (rows.length === 0) {
      // Acknowledged again: the first processing may have run before this inbox acknowledged.
      if (this.outbox !== undefined) await this.outbox.acknowledge(tx, ref.messageId);
      return "duplicate";
    }
    await fn(tx);
    if (this.outbox !== undefined) await this.outbox.acknowledge(tx, ref.messageId);
    return "processed";
  }

  /**
   * Whether the consumer has processed the message (committed).
   *
   * @example
   * ```ts
   * await inbox.isProcessed({ consumer: "orders", messageId: id }); // true
   * ```
   */
  async isProcessed(ref: InboxMessageRef): Promise<boolean> {
    validateId("consumer", ref?.consumer);
    validateMessageId("messageId", ref.messageId);
    const rows = await sqlRows(
      this.own,
      `SELECT 1 AS ok FROM ${this.table} WHERE consumer = $1 AND message_id = $2`,
      [ref.consumer, ref.messageId],
    );
    return rows.length === 1;
  }

  /**
   * Forgets records older than `olderThanMs` (database time), at most `limit` per call; returns how many.
   * A message redelivered after its record is gone would be applied again, so keep records longer than
   * any redelivery can come (relay retries, stream reclaims).
   *
   * @example
   * ```ts
   * await inbox.deleteProcessed({ olderThanMs: 30 * 24 * 3600_000 });
   * ```
   */
  deleteProcessed(options: DeleteOlderOptions): Promise<number> {
    return deleteOlderThan(
      this.own,
      { name: this.table, key: "consumer, message_id", column: "processed_at" },
      options,
    );
  }
}
