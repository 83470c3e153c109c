-- flash-sale-kit PostgresInbox table for PostgreSQL 13+ (and PGlite). The table and its indexes are renamed after
-- the configured table name (indexes: <name>_<suffix>). Safe to run again.
-- One row per (consumer, message) processed, written in the same transaction as the message's effect: the
-- primary key turns a redelivery into a no-op.

CREATE TABLE IF NOT EXISTS fsk_inbox (
  consumer     text NOT NULL,
  message_id   text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, message_id)
);

CREATE INDEX IF NOT EXISTS fsk_inbox_processed ON fsk_inbox (processed_at);
