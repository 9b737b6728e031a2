-- Why: the payment service's ledger of what it asked the gateway to do. The gateway is
-- the source of truth for money; this table is what the service knows about it, and
-- the consistency check compares the two.
-- migrate:up
CREATE TABLE payments (
  order_id          uuid PRIMARY KEY,
  -- The half message's id, given to the gateway as its idempotency key.
  idempotency_key   uuid NOT NULL UNIQUE,
  amount_cents      int NOT NULL CHECK (amount_cents > 0),
  gateway_charge_id text,
  status            text NOT NULL CHECK (status IN ('charged', 'refunded')),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
-- migrate:down
DROP TABLE payments;
