-- Why: one shipment per order; cancelling keeps the row (status) so that a late or
-- repeated schedule command cannot bring a cancelled shipment back.
-- migrate:up
CREATE TABLE shipments (
  order_id   uuid PRIMARY KEY,
  region     text NOT NULL,
  status     text NOT NULL CHECK (status IN ('scheduled', 'cancelled')),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- migrate:down
DROP TABLE shipments;
