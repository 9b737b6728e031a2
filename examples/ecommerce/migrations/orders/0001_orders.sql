-- Why: the order service's own record of what a customer asked for. The order's
-- progress lives in its saga (sagabox.sagas, same database), so this table holds only
-- what the customer sent and what the saga's last local step confirms.
-- migrate:up
CREATE TABLE orders (
  id           uuid PRIMARY KEY,
  customer_id  text NOT NULL,
  sku          text NOT NULL,
  qty          int NOT NULL CHECK (qty > 0),
  amount_cents int NOT NULL CHECK (amount_cents > 0),
  card         text NOT NULL,
  region       text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- Set by the saga's local 'confirm' step, in the orchestrator's transaction.
  confirmed_at timestamptz
);
-- migrate:down
DROP TABLE orders;
