-- flash-sale-kit PostgresInventory schema for PostgreSQL 13+ (and PGlite). Every `fsk_` name is rewritten to the
-- configured table prefix. Safe to run again: tables are created if missing, functions replaced.
-- Lock order everywhere: reservation row, then the user's row, then the SKU's stock row.

CREATE TABLE IF NOT EXISTS fsk_stock (
  sku            text PRIMARY KEY,
  initial        integer NOT NULL CHECK (initial >= -1),
  available      integer NOT NULL CHECK (available >= -1),
  -- bigint: with UNLIMITED stock these count past 2^31 - 1, as Redis's counters do.
  held           bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
  confirmed      bigint NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
  per_user_limit integer NOT NULL CHECK (per_user_limit >= 1),
  starts_at      timestamptz,
  ends_at        timestamptz,
  hold_ms        bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS fsk_stock_user (
  sku      text NOT NULL,
  user_id  text NOT NULL,
  quantity integer NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (sku, user_id)
);

CREATE TABLE IF NOT EXISTS fsk_reservation (
  sku        text NOT NULL,
  id         text NOT NULL,
  user_id    text NOT NULL,
  quantity   integer NOT NULL CHECK (quantity >= 1),
  state      char(1) NOT NULL CHECK (state IN ('H', 'C', 'R')),
  remaining  integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  PRIMARY KEY (sku, id)
);

CREATE INDEX IF NOT EXISTS fsk_reservation_holds ON fsk_reservation (sku, expires_at) WHERE state = 'H';

-- Returns (code, available): 0 and the new available, or 1 and the units already held + confirmed when the
-- new total is below them (nothing written).
CREATE OR REPLACE FUNCTION fsk_set_stock(p_sku text, p_quantity integer, p_limit integer, p_starts_ms bigint,
  p_ends_ms bigint, p_hold_ms bigint)
RETURNS TABLE (code integer, available integer) LANGUAGE plpgsql AS $$
DECLARE
  v_available integer;
  v_committed bigint;
BEGIN
  INSERT INTO fsk_stock AS s (sku, initial, available, per_user_limit, starts_at, ends_at, hold_ms)
  VALUES (p_sku, p_quantity, p_quantity, p_limit, to_timestamp(p_starts_ms / 1000.0),
    to_timestamp(p_ends_ms / 1000.0), p_hold_ms)
  ON CONFLICT (sku) DO UPDATE SET
    initial = EXCLUDED.initial,
    available = CASE WHEN EXCLUDED.initial = -1 THEN -1 ELSE EXCLUDED.initial - s.held - s.confirmed END,
    per_user_limit = EXCLUDED.per_user_limit,
    starts_at = EXCLUDED.starts_at,
    ends_at = EXCLUDED.ends_at,
    hold_ms = EXCLUDED.hold_ms
  WHERE EXCLUDED.initial = -1 OR EXCLUDED.initial >= s.held + s.confirmed
  RETURNING s.available INTO v_available;
  IF FOUND THEN
    RETURN QUERY SELECT 0, v_available;
  ELSE
    SELECT s.held + s.confirmed INTO v_committed FROM fsk_stock s WHERE s.sku = p_sku;
    RETURN QUERY SELECT 1, least(v_committed, 2147483647)::integer;
  END IF;
END $$;

-- Marks a held reservation released and gives its units back to stock and the user's quota.
CREATE OR REPLACE FUNCTION fsk_give_back(p_sku text, p_id text, p_user text, p_quantity integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE fsk_reservation SET state = 'R' WHERE sku = p_sku AND id = p_id;
  UPDATE fsk_stock_user SET quantity = quantity - p_quantity WHERE sku = p_sku AND user_id = p_user;
  DELETE FROM fsk_stock_user WHERE sku = p_sku AND user_id = p_user AND quantity <= 0;
  UPDATE fsk_stock SET held = held - p_quantity,
    available = CASE WHEN available = -1 THEN -1 ELSE available + p_quantity END
  WHERE sku = p_sku;
END $$;

-- A refusal of fsk_reserve, unless a call with the same id committed meanwhile (after fsk_reserve's first
-- look-up: each statement of a function sees the commits made before it starts): then its replay (1) or
-- conflict (7), as Redis, which decides the whole call at once, would answer.
CREATE OR REPLACE FUNCTION fsk_reserve_refusal(p_sku text, p_id text, p_user text, p_quantity integer,
  p_code integer, p_remaining integer)
RETURNS TABLE (code integer, remaining integer) LANGUAGE plpgsql AS $$
DECLARE
  r fsk_reservation%ROWTYPE;
BEGIN
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
  IF NOT FOUND THEN RETURN QUERY SELECT p_code, p_remaining;
  ELSIF r.user_id <> p_user OR r.quantity <> p_quantity THEN RETURN QUERY SELECT 7, 0;
  ELSE RETURN QUERY SELECT 1, r.remaining;
  END IF;
END $$;

-- Returns (code, remaining) with the codes of lua/stock/reserve.lua: 0 reserved, 1 replay, 2 unknown SKU,
-- 3 not started, 4 ended, 5 limit reached, 6 sold out, 7 id used by another user or quantity.
-- The seed's optimistic `UPDATE … WHERE stock >= qty`, plus a per-user row and a unique reservation id; a
-- rejection after the first write raises inside a sub-block, so it rolls back and writes nothing.
CREATE OR REPLACE FUNCTION fsk_reserve(p_sku text, p_id text, p_user text, p_quantity integer)
RETURNS TABLE (code integer, remaining integer) LANGUAGE plpgsql AS $$
DECLARE
  s fsk_stock%ROWTYPE;
  r fsk_reservation%ROWTYPE;
  v_remaining integer;
  v_used integer;
BEGIN
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
  IF FOUND THEN
    IF r.user_id <> p_user OR r.quantity <> p_quantity THEN RETURN QUERY SELECT 7, 0; RETURN; END IF;
    RETURN QUERY SELECT 1, r.remaining;
    RETURN;
  END IF;
  SELECT * INTO s FROM fsk_stock WHERE sku = p_sku;
  IF NOT FOUND THEN RETURN QUERY SELECT * FROM fsk_reserve_refusal(p_sku, p_id, p_user, p_quantity, 2, 0); RETURN; END IF;
  IF s.starts_at IS NOT NULL AND now() < s.starts_at THEN
    RETURN QUERY SELECT * FROM fsk_reserve_refusal(p_sku, p_id, p_user, p_quantity, 3, 0); RETURN;
  END IF;
  IF s.ends_at IS NOT NULL AND now() >= s.ends_at THEN
    RETURN QUERY SELECT * FROM fsk_reserve_refusal(p_sku, p_id, p_user, p_quantity, 4, 0); RETURN;
  END IF;
  -- The limit, then stock, as lua/stock/reserve.lua checks them. These unlocked reads answer the common
  -- refusals (sold out, above all, once the crowd arrives) before a sub-transaction is opened; the locked
  -- writes below decide.
  SELECT u.quantity INTO v_used FROM fsk_stock_user u WHERE u.sku = p_sku AND u.user_id = p_user;
  IF coalesce(v_used, 0)::bigint + p_quantity > s.per_user_limit THEN
    RETURN QUERY SELECT * FROM fsk_reserve_refusal(p_sku, p_id, p_user, p_quantity, 5, 0); RETURN;
  END IF;
  IF s.available <> -1 AND s.available < p_quantity THEN
    RETURN QUERY SELECT * FROM fsk_reserve_refusal(p_sku, p_id, p_user, p_quantity, 6, s.available); RETURN;
  END IF;
  BEGIN
    INSERT INTO fsk_reservation (sku, id, user_id, quantity, state, remaining, expires_at)
    VALUES (p_sku, p_id, p_user, p_quantity, 'H', 0,
      CASE WHEN s.hold_ms > 0 THEN now() + s.hold_ms * interval '1 millisecond' END);
    INSERT INTO fsk_stock_user AS u (sku, user_id, quantity) VALUES (p_sku, p_user, p_quantity)
    ON CONFLICT (sku, user_id) DO UPDATE SET quantity = u.quantity + EXCLUDED.quantity
    WHERE u.quantity::bigint + EXCLUDED.quantity <= s.per_user_limit;
    IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = 'FSK05'; END IF;
    UPDATE fsk_stock SET held = held + p_quantity,
      available = CASE WHEN available = -1 THEN -1 ELSE available - p_quantity END
    WHERE sku = p_sku AND (available = -1 OR available >= p_quantity)
    RETURNING available INTO v_remaining;
    IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = 'FSK06'; END IF;
    UPDATE fsk_reservation SET remaining = v_remaining WHERE sku = p_sku AND id = p_id;
    RETURN QUERY SELECT 0, v_remaining;
  EXCEPTION
    WHEN unique_violation THEN
      -- Another call with the same id committed first: answer with its outcome.
      SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
      IF r.user_id <> p_user OR r.quantity <> p_quantity THEN RETURN QUERY SELECT 7, 0; RETURN; END IF;
      RETURN QUERY SELECT 1, r.remaining;
    -- Our INSERT of the id succeeded before these, so no other call with it can have committed: no replay.
    WHEN SQLSTATE 'FSK05' THEN
      RETURN QUERY SELECT 5, 0;
    WHEN SQLSTATE 'FSK06' THEN
      RETURN QUERY SELECT 6, (SELECT st.available FROM fsk_stock st WHERE st.sku = p_sku);
  END;
END $$;

-- Returns 0 confirmed (now or before), 1 released (before, or now because the hold expired), 2 unknown.
CREATE OR REPLACE FUNCTION fsk_confirm(p_sku text, p_id text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  r fsk_reservation%ROWTYPE;
BEGIN
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN 2; END IF;
  IF r.state = 'C' THEN RETURN 0; END IF;
  IF r.state = 'R' THEN RETURN 1; END IF;
  IF r.expires_at IS NOT NULL AND now() >= r.expires_at THEN
    PERFORM fsk_give_back(p_sku, p_id, r.user_id, r.quantity);
    RETURN 1;
  END IF;
  UPDATE fsk_reservation SET state = 'C' WHERE sku = p_sku AND id = p_id;
  UPDATE fsk_stock SET held = held - r.quantity, confirmed = confirmed + r.quantity WHERE sku = p_sku;
  RETURN 0;
END $$;

-- Returns 0 released (now or before), 1 already confirmed, 2 unknown.
CREATE OR REPLACE FUNCTION fsk_release(p_sku text, p_id text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  r fsk_reservation%ROWTYPE;
BEGIN
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN 2; END IF;
  IF r.state = 'R' THEN RETURN 0; END IF;
  IF r.state = 'C' THEN RETURN 1; END IF;
  PERFORM fsk_give_back(p_sku, p_id, r.user_id, r.quantity);
  RETURN 0;
END $$;

-- Releases at most p_limit holds of one SKU whose expiry (database time) has passed; returns how many.
-- Keeps the lock order of every other function: the due reservation rows (SKIP LOCKED, so sweepers never
-- wait for each other), then their users' rows in user order, then the stock row once for all of them.
CREATE OR REPLACE FUNCTION fsk_expire_holds(p_sku text, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_ids text[];
  v_total bigint;
  v_n integer;
BEGIN
  SELECT array_agg(id), coalesce(sum(quantity), 0), count(*) INTO v_ids, v_total, v_n FROM (
    SELECT id, quantity FROM fsk_reservation
    WHERE sku = p_sku AND state = 'H' AND expires_at <= now()
    ORDER BY expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED
  ) due;
  IF v_n = 0 THEN RETURN 0; END IF;
  PERFORM 1 FROM fsk_stock_user
  WHERE sku = p_sku AND user_id IN (SELECT user_id FROM fsk_reservation WHERE sku = p_sku AND id = ANY (v_ids))
  ORDER BY user_id FOR UPDATE;
  UPDATE fsk_stock_user u SET quantity = u.quantity - d.quantity
  FROM (
    SELECT user_id, sum(quantity)::integer AS quantity FROM fsk_reservation
    WHERE sku = p_sku AND id = ANY (v_ids) GROUP BY user_id
  ) d
  WHERE u.sku = p_sku AND u.user_id = d.user_id;
  DELETE FROM fsk_stock_user
  WHERE sku = p_sku AND quantity <= 0
    AND user_id IN (SELECT user_id FROM fsk_reservation WHERE sku = p_sku AND id = ANY (v_ids));
  UPDATE fsk_reservation SET state = 'R' WHERE sku = p_sku AND id = ANY (v_ids);
  UPDATE fsk_stock SET held = held - v_total,
    available = CASE WHEN available = -1 THEN -1 ELSE available + v_total END
  WHERE sku = p_sku;
  RETURN v_n;
END $$;
