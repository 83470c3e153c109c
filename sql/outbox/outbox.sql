-- flash-sale-kit PostgresOutbox table for PostgreSQL 13+ (and PGlite). The table and its indexes are renamed after
-- the configured table name (indexes: <name>_<suffix>). Safe to run again.
-- A row is written in the caller's business transaction, so it exists if and only if that transaction
-- committed. status: pending (due at available_at; while a relay holds it, available_at is its lease end),
-- sent (the transport accepted it), processed (a consumer's inbox transaction acknowledged it: the
-- consumer-acknowledged mode), or dead (attempts used up; last_error says why).

CREATE TABLE IF NOT EXISTS fsk_outbox (
  seq          bigserial NOT NULL,
  id           text PRIMARY KEY,
  topic        text NOT NULL,
  key          text,
  payload      jsonb NOT NULL,
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'processed', 'dead')),
  attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  available_at timestamptz NOT NULL DEFAULT now(),
  created_at   timestamptz NOT NULL DEFAULT now(),
  sent_at      timestamptz,
  processed_at timestamptz,
  dead_at      timestamptz,
  last_error   text,
  claimed_by   text
);

-- The relay's claim walks this partial index: only pending rows, oldest due first.
CREATE INDEX IF NOT EXISTS fsk_outbox_due ON fsk_outbox (available_at, seq) WHERE status = 'pending';
-- Retention deletes old sent rows; a relay in consumer-acknowledged mode re-sends those left unprocessed.
CREATE INDEX IF NOT EXISTS fsk_outbox_sent ON fsk_outbox (sent_at) WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS fsk_outbox_processed ON fsk_outbox (processed_at) WHERE status = 'processed';
CREATE INDEX IF NOT EXISTS fsk_outbox_dead ON fsk_outbox (dead_at, seq) WHERE status = 'dead';
