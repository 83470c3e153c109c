-- flash-sale-kit PostgresOrders table for PostgreSQL 13+ (and PGlite). The table and its indexes are renamed after
-- the configured table name (indexes: <name>_<suffix>). Safe to run again.
-- An order is created pending from a stock reservation; exactly one of `pay` (pending -> paid) and the
-- payment timeout (pending -> cancelled) changes it, because both are `UPDATE … WHERE status = 'pending'`.

CREATE TABLE IF NOT EXISTS fsk_orders (
  id             text PRIMARY KEY,
  sku            text NOT NULL,
  user_id        text NOT NULL,
  quantity       integer NOT NULL CHECK (quantity >= 1),
  reservation_id text NOT NULL,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'cancelled')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  payment_due_at timestamptz NOT NULL,
  paid_at        timestamptz,
  cancelled_at   timestamptz,
  cancel_reason  text,
  UNIQUE (sku, reservation_id)
);

CREATE INDEX IF NOT EXISTS fsk_orders_user ON fsk_orders (user_id, created_at);
CREATE INDEX IF NOT EXISTS fsk_orders_pending ON fsk_orders (payment_due_at) WHERE status = 'pending';
