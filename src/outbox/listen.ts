// LISTEN for the relay: the outbox's NOTIFY wake-ups, on a pg.Client or PGlite the user dedicates to it.
import { DatabaseError, FlashSaleError, InvalidArgumentError } from "../errors.js";
import { isPool } from "./transaction.js";

/** A `pg.Client` (not a pool: LISTEN needs one dedicated connection) to receive NOTIFY on. */
export interface PgListenClient {
  query(sql: string): Promise<unknown>;
  on(event: "notification", listener: (message: { channel: string; payload?: string }) => void): unknown;
  removeListener(
    event: "notification",
    listener: (message: { channel: string; payload?: string }) => void,
  ): unknown;
}

/** PGlite's `listen(channel, callback)`. */
export interface PgliteListenClient {
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
}

/** Where a relay receives the outbox's NOTIFY wake-ups from. */
export type ListenClient = PgListenClient | PgliteListenClient;

/** Checks a `listen` option: a dedicated pg.Client or a PGlite instance, not a pool. @internal */
export function checkListenClient(name: string, client: unknown): asserts client is ListenClient {
  const l = client as Partial<PgListenClient & PgliteListenClient> | null;
  if (l === null || typeof l !== "object") {
    throw new InvalidArgumentError(name, "must be a pg.Client or a PGlite instance");
  }
  if (isPool(l)) throw new InvalidArgumentError(name, "must be a dedicated client, not a pool");
  if (typeof l.listen !== "function" && (typeof l.on !== "function" || typeof l.query !== "function")) {
    throw new InvalidArgumentError(name, "must be a pg.Client or a PGlite instance");
  }
}

/**
 * LISTENs on `channel` and calls `onNotify` with each notification's payload; resolves to the UNLISTEN.
 * Failures become {@link DatabaseError}s. @internal
 */
export async function listen(
  client: ListenClient,
  channel: string,
  onNotify: (payload: string | undefined) => void,
): Promise<() => Promise<void>> {
  try {
    return await subscribe(client, channel, onNotify);
  } catch (err) {
    if (err instanceof FlashSaleError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new DatabaseError(`LISTEN failed: ${message}`, { cause: err });
  }
}

async function subscribe(
  client: ListenClient,
  channel: string,
  onNotify: (payload: string | undefined) => void,
): Promise<() => Promise<void>> {
  if ("listen" in client && typeof client.listen === "function") {
    return client.listen(channel, (payload) => onNotify(payload));
  }
  const pgClient = client as PgListenClient;
  const listener = (msg: { channel: string; payload?: string }): void => {
    if (msg.channel === channel) onNotify(msg.payload);
  };
  pgClient.on("notification", listener);
  try {
    await pgClient.query(`LISTEN "${channel}"`);
  } catch (err) {
    pgClient.removeListener("notification", listener);
    throw err;
  }
  return async () => {
    pgClient.removeListener("notification", listener);
    await pgClient.query(`UNLISTEN "${channel}"`);
  };
}
