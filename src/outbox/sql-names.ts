// Table names the outbox module accepts, and how its shipped SQL is rewritten to use them.
import { InvalidArgumentError } from "../errors.js";
import { SQL } from "../internal/embedded.generated.js";

const PART = "[a-z_][a-z0-9_]{0,50}";
const TABLE_RE = new RegExp(`^(?:${PART}\\.)?${PART}$`);

/**
 * Checks a table name option: a lower-case identifier, optionally schema-qualified (`app.outbox`).
 * @internal
 */
export function checkTableName(option: string, table: unknown): string {
  if (typeof table !== "string" || !TABLE_RE.test(table)) {
    throw new InvalidArgumentError(
      option,
      "must be a lower-case SQL identifier, optionally schema-qualified (letters, digits, '_', at most 51 each)",
    );
  }
  return table;
}

/** The unqualified part of a table name (`app.outbox` -> `outbox`). @internal */
export function bareName(table: string): string {
  return table.slice(table.lastIndexOf(".") + 1);
}

/**
 * Rewrites a shipped script written for `placeholder` (say `fsk_outbox`): index and sequence names
 * `placeholder_x` become `<bare name>_x` (an index lives in its table's schema and takes no schema), and the
 * table itself becomes the (possibly qualified) name.
 * @internal
 */
export function rewriteTable(script: string, placeholder: string, table: string): string {
  const bare = bareName(table);
  return script
    .replace(new RegExp(`\\b${placeholder}_(\\w+)`, "g"), `${bare}_$1`)
    .replace(new RegExp(`\\b${placeholder}\\b`, "g"), table);
}

/**
 * A shipped schema (`sql/<name>.sql`, written for the table `fsk_<file name>`) for the table `table`.
 * @internal
 */
export function tableSchema(name: "outbox/outbox" | "outbox/inbox" | "orders/orders", table: string): string {
  const placeholder = `fsk_${name.slice(name.indexOf("/") + 1)}`;
  return rewriteTable(SQL[name], placeholder, checkTableName("table", table));
}
