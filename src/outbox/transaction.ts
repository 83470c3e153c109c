// transaction(db, fn): one database transaction on whatever client the user has (pg.Pool, pg.Client,
// pg.PoolClient, PGlite), recognised by shape so that pg stays an optional peer dependency.
import { AsyncLocalStorage } from "node:async_hooks";
import { DatabaseError, FlashSaleError, InvalidArgumentError } from "../errors.js";
import type { SqlClient } from "../internal/sql.js";

/** A `pg.Pool`-like client: hands out connections with `connect()` and takes them back with `release()`. */
export interface PoolLike extends SqlClient {
  connect(): Promise<PooledClientLike>;
  readonly totalCount: number;
  readonly idleCount: number;
}

/** A connection checked out of a pool (`pg.PoolClient`). `release(err)` with an error destroys it. */
export interface PooledClientLike extends SqlClient {
  release(err?: Error | boolean): void;
}

/** A client that runs transactions itself (PGlite's `transaction(fn)`). */
export interface TransactionCapable extends SqlClient {
  transaction<T>(fn: (tx: never) => Promise<T>): Promise<T>;
}

/** What `transaction()` accepts: a pool, a single client (`pg.Client`, a checked-out `pg.PoolClient`), or PGlite. */
export type TransactionSource = SqlClient | PoolLike | TransactionCapable;

/** @internal */
export function isPool(db: unknown): db is PoolLike {
  return (
    typeof db === "object" &&
    db !== null &&
    typeof (db as PoolLike).connect === "function" &&
    "totalCount" in db &&
    "idleCount" in db
  );
}

/** @internal */
export function runsOwnTransactions(db: unknown): db is TransactionCapable {
  return (
    typeof db === "object" && db !== null && typeof (db as TransactionCapable).transaction === "function"
  );
}

/**
 * Checks that `tx` is a transaction's client, not the pool or PGlite itself (on which a statement would
 * commit on its own, whatever the caller's transaction then does). @internal
 */
export function checkTransactionClient(name: string, tx: unknown): asserts tx is SqlClient {
  checkSqlClient(name, tx);
  if (isPool(tx) || runsOwnTransactions(tx)) {
    throw new InvalidArgumentError(
      name,
      "must be the client of a transaction (the tx that transaction() hands you), not the pool or database",
    );
  }
}

/** @internal */
export function checkSqlClient(name: string, db: unknown): asserts db is SqlClient {
  if (db === null || typeof db !== "object" || typeof (db as SqlClient).query !== "function") {
    throw new InvalidArgumentError(
      name,
      "must have a query(sql, params) method (pg.Pool, pg.Client or PGlite)",
    );
  }
}

// One single-connection client can carry one transaction at a time; later callers wait their turn instead
// of interleaving their statements into someone else's transaction. The outbox's, inbox's and orders' own
// statements take the same queue (ownStatements), so they never run inside a caller's open transaction.
const queues = new WeakMap<object, Promise<unknown>>();

/** The single-connection transactions the current async call chain runs inside of (innermost last). */
const openHere = new AsyncLocalStorage<readonly { readonly client: object; open: boolean }[]>();

function insideTransactionOn(client: object): boolean {
  return openHere.getStore()?.some((t) => t.client === client && t.open) ?? false;
}

async function serialized<T>(client: object, fn: () => Promise<T>): Promise<T> {
  const before = queues.get(client) ?? Promise.resolve();
  const run = before.then(fn, fn);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(client, settled);
  try {
    return await run;
  } finally {
    if (queues.get(client) === settled) queues.delete(client);
  }
}

async function control(client: SqlClient, sql: string): Promise<{ command?: string }> {
  try {
    return (await client.query(sql)) as { command?: string };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new DatabaseError(`${sql} failed: ${message}`, { cause: err });
  }
}

/** BEGIN, fn, COMMIT on one connection; ROLLBACK when fn throws. */
async function onConnection<T>(client: SqlClient, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
  await control(client, "BEGIN");
  let result: T;
  try {
    result = await fn(client);
  } catch (err) {
    try {
      await control(client, "ROLLBACK");
    } catch (rollbackErr) {
      throw new ConnectionBroken(err, rollbackErr);
    }
    throw err;
  }
  const commit = await control(client, "COMMIT");
  // PostgreSQL answers COMMIT of a transaction in which a statement failed (and fn swallowed the error)
  // with ROLLBACK and no error: report it, or the caller would believe its writes were saved.
  if (commit.command === "ROLLBACK") {
    throw new DatabaseError("the transaction was rolled back at COMMIT because a statement in it had failed");
  }
  return result;
}

/** The listener methods of a pg client (an EventEmitter), where it has them. */
interface ErrorEmitter {
  on(event: "error", listener: (err: Error) => void): unknown;
  removeListener(event: "error", listener: (err: Error) => void): unknown;
}

/** fn failed and so did the ROLLBACK after it: the connection must not go back to the pool. */
class ConnectionBroken extends Error {
  constructor(
    readonly original: unknown,
    readonly rollbackError: unknown,
  ) {
    super("ROLLBACK failed");
  }
}

/**
 * Runs `fn` in one database transaction and returns what it returns. `fn` gets the transaction's client:
 * run every statement of the transaction on it (and never on `db` itself, which on PGlite would wait for
 * the transaction to end). When `fn` throws, the transaction is rolled back and the error rethrown as is.
 *
 * - `pg.Pool`: checks out a connection, `BEGIN` / `COMMIT` / `ROLLBACK` on it, releases it (a connection
 *   whose ROLLBACK failed is destroyed rather than returned to the pool).
 * - PGlite: its own `transaction()`.
 * - `pg.Client` or a checked-out `pg.PoolClient`: `BEGIN` / `COMMIT` on it; concurrent calls on the same
 *   client wait for each other instead of interleaving, and so do the own statements of a `PostgresOutbox`,
 *   `PostgresInbox` or `PostgresOrders` built on that client (a relay's claim waits for the transaction to
 *   end instead of seeing its uncommitted rows). Open transactions on such a client only through this
 *   function: a `BEGIN` you send yourself is not in the queue. A `transaction()` on the same client from
 *   inside `fn` cannot nest: it throws {@link InvalidArgumentError} instead of waiting for itself.
 *
 * A COMMIT that PostgreSQL turns into a rollback (a statement failed and `fn` caught the error) throws
 * {@link DatabaseError}; so do failures of BEGIN, COMMIT and ROLLBACK.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { transaction, PostgresOutbox } from "flash-sale-kit/outbox";
 *
 * const db = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const outbox = new PostgresOutbox(db);
 * await transaction(db, async (tx) => {
 *   await tx.query("UPDATE accounts SET balance = balance - $1 WHERE id = $2", [10, "a1"]);
 *   await outbox.enqueue(tx, { topic: "balance-changed", payload: { account: "a1", delta: -10 } });
 * });
 * ```
 */
export async function transaction<T>(db: TransactionSource, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
  checkSqlClient("db", db);
  if (typeof fn !== "function") throw new InvalidArgumentError("fn", "must be a function");
  if (insideTransactionOn(db)) {
    throw new InvalidArgumentError(
      "db",
      "is the client of a transaction() still open in this call chain, and transactions do not nest (a " +
        "BEGIN inside one would be ignored and its COMMIT would commit the outer one early): run the " +
        "statements on the open transaction's client instead",
    );
  }
  if (runsOwnTransactions(db)) {
    let fnDone = false;
    // PGlite itself is marked too: a statement on it inside the transaction waits for the transaction.
    const outer = { client: db as object, open: true };
    try {
      return await within(outer, () =>
        db.transaction(async (tx: never) => {
          const result = await within({ client: tx as object, open: true }, () => fn(tx as SqlClient));
          fnDone = true;
          return result;
        }),
      );
    } catch (err) {
      // fn succeeded, so the failure is the COMMIT's (PGlite rolls back a transaction in which a statement
      // failed and fn swallowed the error).
      if (fnDone && !(err instanceof FlashSaleError)) {
        const message = err instanceof Error ? err.message : String(err);
        throw new DatabaseError(`COMMIT failed: ${message}`, { cause: err });
      }
      throw err;
    } finally {
      outer.open = false;
    }
  }
  if (isPool(db)) {
    let client: PooledClientLike;
    try {
      client = await db.connect();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new DatabaseError(`could not check out a connection: ${message}`, { cause: err });
    }
    let broken: unknown = false;
    // A checked-out pg client that loses its connection between two statements (the server restarted)
    // emits `error`, which with no listener would crash the process: catch it, and destroy the client.
    const events = client as Partial<ErrorEmitter>;
    let lost: Error | undefined;
    const onLost = (err: Error): void => {
      lost = err;
    };
    events.on?.("error", onLost);
    try {
      return await within({ client, open: true }, () => onConnection(client, fn));
    } catch (err) {
      if (err instanceof ConnectionBroken) {
        broken = err.rollbackError;
        throw err.original;
      }
      throw err;
    } finally {
      events.removeListener?.("error", onLost);
      client.release(lost ?? (broken instanceof Error ? broken : broken !== false));
    }
  }
  return serialized(db, async () => {
    try {
      return await within({ client: db, open: true }, () => onConnection(db, fn));
    } catch (err) {
      if (err instanceof ConnectionBroken) throw err.original;
      throw err;
    }
  });
}

/** Calls of {@link within} not yet settled, in this process. */
let running = 0;

/** Runs `body` with `scope` marked open in this async call chain, and closed once `body` settles. */
async function within<T>(
  scope: { readonly client: object; open: boolean },
  body: () => Promise<T>,
): Promise<T> {
  running++;
  try {
    return await openHere.run([...(openHere.getStore() ?? []), scope], body);
  } finally {
    scope.open = false;
    // On Node 20 a storage that was ever run keeps async hooks on for the whole process, which makes every
    // promise of the application slower (the buy path of the example spent about 3% of its CPU in them). With
    // no transaction open there is nothing to find, so the storage is switched off until the next one.
    if (--running === 0) openHere.disable();
  }
}

/**
 * The client a component (`PostgresOutbox`, `PostgresInbox`, `PostgresOrders`) runs its own statements on:
 * claims, marks, listings, which must never become part of a caller's transaction. A pool gives each its own
 * connection, so it is used as it is; PGlite makes a statement wait for the open transaction. On a single
 * connection (`pg.Client`, a checked-out `pg.PoolClient`) each statement takes its turn in the queue that
 * {@link transaction} uses, so it runs between transactions, never inside one. Issued from inside a
 * `transaction()` open on that same connection or PGlite it could only wait for itself: it throws
 * {@link InvalidArgumentError} instead of hanging.
 * @internal
 */
export function ownStatements(component: string, db: SqlClient): SqlClient {
  if (isPool(db)) return db;
  const queued = !runsOwnTransactions(db);
  const run = <T>(statement: () => Promise<T>): Promise<T> => {
    if (insideTransactionOn(db)) {
      return Promise.reject(
        new InvalidArgumentError(
          "db",
          `is the single connection of a transaction() still open in this call chain: ${component} runs ` +
            "its own statements outside your transactions, after the open one ends, so this call would " +
            `wait for itself. Call it after the transaction, or give ${component} a pg.Pool`,
        ),
      );
    }
    return queued ? serialized(db, statement) : statement();
  };
  const own: SqlClient & { exec?: (sql: string) => Promise<unknown> } = {
    query: (sql: string, params?: unknown[]) => run(() => db.query(sql, params)),
  };
  // PGlite runs a script of several statements with exec (see runSqlScript).
  const exec = (db as { exec?: unknown }).exec;
  if (typeof exec === "function") {
    own.exec = (sql: string) => run(() => (exec as (sql: string) => Promise<unknown>).call(db, sql));
  }
  return own;
}
