-- Why: inventory keeps what is on the shelf and what each order holds. A reservation
-- is one row per order (its primary key makes a repeated reserve a no-op), and stock
-- can never go negative, which is how "not enough stock" is decided.
-- migrate:up
CREATE TABLE stock (
  sku       text PRIMARY KEY,
  available int NOT NULL CHECK (available >= 0),
  -- What was put on the shelf: available + active reservations must always equal it.
  initial   int NOT NULL CHECK (initial >= 0)
);
CREATE TABLE reservations (
  order_id    uuid PRIMARY KEY,
  sku         text NOT NULL REFERENCES stock (sku),
  qty         int NOT NULL CHECK (qty > 0),
  status      text NOT NULL CHECK (status IN ('reserved', 'released')),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
-- migrate:down
DROP TABLE reservations;
DROP TABLE stock;
