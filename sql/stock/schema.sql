-- flash-sale-kit PostgresInventory schema for PostgreSQL 13+ (and PGlite). Every `fsk_` name is rewritten to the
-- configured table prefix. Safe to run again: tables are created if missing, functions replaced.
-- Lock order: every write to a SKU's reservations, users and counters happens under the lock of the SKU's
-- stock row, taken first, so writers of one SKU take turns on that one row and never deadlock.

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

-- Marks a held reservation released and gives its units back to stock and the user's quota. The caller holds
-- the stock row's lock.
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

-- Reservations of one SKU, applied one by one in array order, each with its own (code, remaining): the codes
-- of lua/stock/reserve.lua, 0 reserved, 1 replay of an earlier success (remaining as it was then), 2 unknown
-- SKU, 3 not started, 4 ended, 5 limit reached, 6 sold out, 7 id used by another user or quantity. A later
-- item sees the earlier ones: a repeated id replays an earlier item's success, a user's units add up.
-- Group commit: calls that arrive together share this one statement, so one stock-row lock, one commit and
-- one round trip serve them all. Only items that pass every check write, so a refusal writes nothing.
-- One read (one snapshot: the stock row, the items' reservations and users) decides every item. With no
-- item to write (replays and refusals: most calls once the crowd arrives) that is all, and no lock is taken.
-- Otherwise the stock row is locked; every transaction that changes a SKU's reservations or users also
-- updates that row, so when its version (xmin) is still the one read, nothing changed and the decisions
-- stand; else the read is made again under the lock, where it is exact, and the items decided again.
CREATE OR REPLACE FUNCTION fsk_reserve_many(p_sku text, p_ids text[], p_users text[], p_quantities integer[])
RETURNS TABLE (codes integer[], remainings integer[]) LANGUAGE plpgsql AS $$
DECLARE
  n integer := coalesce(cardinality(p_ids), 0);
  v_codes integer[];
  v_rems integer[];
  -- the stock row as read
  v_found boolean;
  v_version text;
  v_available integer;
  v_limit integer;
  v_starts timestamptz;
  v_ends timestamptz;
  v_hold bigint;
  -- reservations known (read, then those this call makes): id, user, quantity, remaining
  r_ids text[];
  r_users text[];
  r_qty integer[];
  r_rem integer[];
  -- users' units, as read and as this call adds to them
  u_ids text[];
  u_used bigint[];
  -- what this call writes
  w_ids text[];
  w_users text[];
  w_qty integer[];
  w_rem integer[];
  v_closed integer;
  v_avail integer;
  v_held bigint;
  v_locked_version text;
  k integer;
  q integer;
BEGIN
  IF n <> coalesce(cardinality(p_users), 0) OR n <> coalesce(cardinality(p_quantities), 0) THEN
    RAISE EXCEPTION 'fsk_reserve_many: arrays of different lengths' USING ERRCODE = '22023';
  END IF;
  FOR attempt IN 1..2 LOOP
    -- One primary-key look-up per id and per user (a LATERAL … LIMIT 1 is never flattened): `id = ANY (…)`
    -- may be planned as a scan of the whole SKU while the table's statistics are young.
    SELECT st.sku IS NOT NULL, st.xmin::text, st.available, st.per_user_limit, st.starts_at, st.ends_at,
      st.hold_ms, r.ids, r.users, r.qty, r.rem, u.ids, u.used
    INTO v_found, v_version, v_available, v_limit, v_starts, v_ends, v_hold, r_ids, r_users, r_qty, r_rem,
      u_ids, u_used
    FROM (SELECT 1) one
    LEFT JOIN fsk_stock st ON st.sku = p_sku
    CROSS JOIN LATERAL (
      SELECT array_agg(t.id) AS ids, array_agg(t.user_id) AS users, array_agg(t.quantity) AS qty,
        array_agg(t.remaining) AS rem
      FROM unnest(p_ids) AS x (id) CROSS JOIN LATERAL (
        SELECT t.id, t.user_id, t.quantity, t.remaining FROM fsk_reservation t
        WHERE t.sku = p_sku AND t.id = x.id LIMIT 1) t) r
    CROSS JOIN LATERAL (
      SELECT array_agg(t.user_id) AS ids, array_agg(t.quantity::bigint) AS used
      FROM unnest(p_users) AS x (user_id) CROSS JOIN LATERAL (
        SELECT t.user_id, t.quantity FROM fsk_stock_user t WHERE t.sku = p_sku AND t.user_id = x.user_id LIMIT 1) t) u;
    v_codes := array_fill(0, ARRAY[n]);
    v_rems := array_fill(0, ARRAY[n]);
    w_ids := '{}';
    w_users := '{}';
    w_qty := '{}';
    w_rem := '{}';
    v_held := 0;
    v_closed := 0;
    IF v_starts IS NOT NULL AND now() < v_starts THEN v_closed := 3;
    ELSIF v_ends IS NOT NULL AND now() >= v_ends THEN v_closed := 4;
    END IF;
    v_avail := v_available;
    FOR i IN 1..n LOOP
      q := p_quantities[i];
      k := array_position(r_ids, p_ids[i]);
      IF k IS NOT NULL THEN
        IF r_users[k] <> p_users[i] OR r_qty[k] <> q THEN v_codes[i] := 7;
        ELSE v_codes[i] := 1; v_rems[i] := r_rem[k];
        END IF;
      ELSIF NOT v_found THEN v_codes[i] := 2;
      ELSIF v_closed <> 0 THEN v_codes[i] := v_closed;
      ELSE
        k := array_position(u_ids, p_users[i]);
        IF coalesce(u_used[k], 0) + q > v_limit THEN v_codes[i] := 5;
        ELSIF v_avail <> -1 AND v_avail < q THEN v_codes[i] := 6; v_rems[i] := v_avail;
        ELSE
          IF v_avail <> -1 THEN v_avail := v_avail - q; END IF;
          v_held := v_held + q;
          v_rems[i] := v_avail;
          IF k IS NULL THEN
            u_ids := array_append(u_ids, p_users[i]);
            u_used := array_append(u_used, q::bigint);
          ELSE
            u_used[k] := u_used[k] + q;
          END IF;
          r_ids := array_append(r_ids, p_ids[i]);
          r_users := array_append(r_users, p_users[i]);
          r_qty := array_append(r_qty, q);
          r_rem := array_append(r_rem, v_avail);
          w_ids := array_append(w_ids, p_ids[i]);
          w_users := array_append(w_users, p_users[i]);
          w_qty := array_append(w_qty, q);
          w_rem := array_append(w_rem, v_avail);
        END IF;
      END IF;
    END LOOP;
    IF cardinality(w_ids) = 0 OR attempt = 2 THEN EXIT; END IF;
    SELECT st.xmin::text INTO v_locked_version FROM fsk_stock st WHERE st.sku = p_sku FOR UPDATE;
    IF v_locked_version IS NOT DISTINCT FROM v_version THEN EXIT; END IF;
  END LOOP;
  IF cardinality(w_ids) > 0 THEN
    INSERT INTO fsk_reservation (sku, id, user_id, quantity, state, remaining, expires_at)
    SELECT p_sku, w.id, w.user_id, w.quantity, 'H', w.remaining,
      CASE WHEN v_hold > 0 THEN now() + v_hold * interval '1 millisecond' END
    FROM unnest(w_ids, w_users, w_qty, w_rem) AS w (id, user_id, quantity, remaining);
    INSERT INTO fsk_stock_user AS u (sku, user_id, quantity)
    SELECT p_sku, w.user_id, sum(w.quantity)::integer FROM unnest(w_users, w_qty) AS w (user_id, quantity)
    GROUP BY w.user_id ORDER BY w.user_id
    ON CONFLICT (sku, user_id) DO UPDATE SET quantity = u.quantity + EXCLUDED.quantity;
    UPDATE fsk_stock SET held = held + v_held, available = v_avail WHERE sku = p_sku;
  END IF;
  RETURN QUERY SELECT v_codes, v_rems;
END $$;

-- One reservation: fsk_reserve_many with one item. Returns (code, remaining) with the codes above.
CREATE OR REPLACE FUNCTION fsk_reserve(p_sku text, p_id text, p_user text, p_quantity integer)
RETURNS TABLE (code integer, remaining integer) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT m.codes[1], m.remainings[1]
  FROM fsk_reserve_many(p_sku, ARRAY[p_id], ARRAY[p_user], ARRAY[p_quantity]) m;
END $$;

-- The helper of an earlier fsk_reserve, no longer used.
DROP FUNCTION IF EXISTS fsk_reserve_refusal(text, text, text, integer, integer, integer);

-- Returns 0 confirmed (now or before), 1 released (before, or now because the hold expired), 2 unknown.
-- Settled reservations (confirmed, released) never change again, so they are answered without a lock.
CREATE OR REPLACE FUNCTION fsk_confirm(p_sku text, p_id text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  r fsk_reservation%ROWTYPE;
BEGIN
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
  IF NOT FOUND THEN RETURN 2; END IF;
  IF r.state = 'C' THEN RETURN 0; END IF;
  IF r.state = 'R' THEN RETURN 1; END IF;
  PERFORM 1 FROM fsk_stock WHERE sku = p_sku FOR UPDATE;
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
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
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
  IF NOT FOUND THEN RETURN 2; END IF;
  IF r.state = 'R' THEN RETURN 0; END IF;
  IF r.state = 'C' THEN RETURN 1; END IF;
  PERFORM 1 FROM fsk_stock WHERE sku = p_sku FOR UPDATE;
  SELECT * INTO r FROM fsk_reservation WHERE sku = p_sku AND id = p_id;
  IF r.state = 'R' THEN RETURN 0; END IF;
  IF r.state = 'C' THEN RETURN 1; END IF;
  PERFORM fsk_give_back(p_sku, p_id, r.user_id, r.quantity);
  RETURN 0;
END $$;

-- Releases at most p_limit holds of one SKU whose expiry (database time) has passed; returns how many.
-- Under the stock row's lock, as every writer of the SKU; a sweep with nothing due takes no lock.
CREATE OR REPLACE FUNCTION fsk_expire_holds(p_sku text, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_ids text[];
  v_total bigint;
  v_n integer;
BEGIN
  PERFORM 1 FROM fsk_reservation WHERE sku = p_sku AND state = 'H' AND expires_at <= now() LIMIT 1;
  IF NOT FOUND THEN RETURN 0; END IF;
  PERFORM 1 FROM fsk_stock WHERE sku = p_sku FOR UPDATE;
  SELECT array_agg(id), coalesce(sum(quantity), 0), count(*) INTO v_ids, v_total, v_n FROM (
    SELECT id, quantity FROM fsk_reservation
    WHERE sku = p_sku AND state = 'H' AND expires_at <= now()
    ORDER BY expires_at LIMIT p_limit
  ) due;
  IF v_n = 0 THEN RETURN 0; END IF;
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
