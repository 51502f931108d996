/**
 * Issue 14's realistic sample database: types, a domain with a CHECK, a composite type, a
 * range-partitioned table (12 partitions and a default), generated and identity columns, owned
 * sequences, CHECK, unique and partial indexes, foreign keys with a cycle, a trigger, a view, a
 * materialized view, a function, comments, and names that need quoting.
 */

/** The sample's schema and data (one script, run as one multi-statement query). */
export const SAMPLE_DB_SQL = `
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'the shop''s sales';
CREATE SCHEMA "Odd Schema ü";
CREATE TYPE sales.status AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN sales.positive_money AS numeric(12,2) CONSTRAINT positive CHECK (VALUE > 0);
CREATE TYPE sales.address AS (street text, city text, zip text);
CREATE FUNCTION sales.touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.updated := '2000-01-01 00:00:00+00'::timestamptz; -- fixed: rows stay comparable
  RETURN NEW;
END
$fn$;
CREATE TABLE sales.customers (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  email text,
  addr sales.address,
  favorite_order bigint,
  updated timestamptz
);
COMMENT ON TABLE sales.customers IS 'people who buy';
COMMENT ON COLUMN sales.customers.email IS 'unique, case-insensitive';
CREATE UNIQUE INDEX customers_email_key ON sales.customers (lower(email));
CREATE TABLE sales.orders (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES sales.customers (id),
  status sales.status NOT NULL DEFAULT 'new',
  amount sales.positive_money,
  qty int NOT NULL CONSTRAINT qty_positive CHECK (qty > 0),
  total numeric GENERATED ALWAYS AS (amount * qty) STORED
);
ALTER TABLE sales.customers ADD CONSTRAINT customers_favorite_fk FOREIGN KEY (favorite_order) REFERENCES sales.orders (id);
CREATE INDEX orders_open ON sales.orders (customer_id) WHERE status <> 'shipped';
CREATE TRIGGER customers_touch BEFORE UPDATE ON sales.customers FOR EACH ROW EXECUTE FUNCTION sales.touch();
CREATE TABLE sales.measurements (ts date NOT NULL, sensor int NOT NULL, value double precision) PARTITION BY RANGE (ts);
DO $do$ BEGIN
  FOR m IN 1..12 LOOP
    EXECUTE format('CREATE TABLE sales.measurements_%s PARTITION OF sales.measurements FOR VALUES FROM (%L) TO (%L)',
                   lpad(m::text, 2, '0'), make_date(2025, m, 1), make_date(2025, m, 1) + interval '1 month');
  END LOOP;
END $do$;
CREATE TABLE sales.measurements_other PARTITION OF sales.measurements DEFAULT;
CREATE INDEX measurements_sensor ON sales.measurements (sensor, ts);
CREATE SEQUENCE sales.ticket_no;
CREATE TABLE sales.tickets (no int NOT NULL DEFAULT nextval('sales.ticket_no'), note text);
ALTER SEQUENCE sales.ticket_no OWNED BY sales.tickets.no;
CREATE VIEW sales.big_orders AS SELECT id, customer_id, total FROM sales.orders WHERE qty > 5;
CREATE MATERIALIZED VIEW sales.order_totals AS SELECT customer_id, sum(total) AS total FROM sales.orders GROUP BY customer_id;
CREATE TABLE "Odd Schema ü"."Big Table Ä" (id serial PRIMARY KEY, "Wert" text, "when" date);
COMMENT ON TABLE "Odd Schema ü"."Big Table Ä" IS 'needs quoting';

INSERT INTO sales.customers (name, email, addr)
  SELECT 'c' || i, 'C' || i || '@example.com', ROW('street ' || i, 'city', lpad(i::text, 5, '0'))::sales.address
    FROM generate_series(1, 300) i;
INSERT INTO sales.orders (customer_id, status, amount, qty)
  SELECT 1 + i % 300, (ARRAY['new','paid','shipped'])[1 + i % 3]::sales.status, (i % 97 + 1) * 1.25, 1 + i % 9
    FROM generate_series(1, 2000) i;
UPDATE sales.customers SET favorite_order = id * 3 WHERE id % 4 = 0;
INSERT INTO sales.measurements SELECT DATE '2024-12-25' + (i % 400), i % 17, i / 7.0 FROM generate_series(1, 3000) i;
INSERT INTO sales.tickets (note) SELECT 'ticket ' || i FROM generate_series(1, 42) i;
INSERT INTO "Odd Schema ü"."Big Table Ä" ("Wert", "when") SELECT 'wert ' || i, DATE '2025-01-01' + i FROM generate_series(1, 77) i;
SELECT setval('sales.orders_id_seq', 5000);
REFRESH MATERIALIZED VIEW sales.order_totals;
`;

/** Every table of the sample, as `schema.name` (what `--all` resolves to, in its order). */
export const SAMPLE_TABLES = [
  'Odd Schema ü.Big Table Ä',
  'sales.customers',
  'sales.measurements',
  'sales.orders',
  'sales.tickets',
];

/** The sample's sequences. */
export const SAMPLE_SEQUENCES = [
  '"Odd Schema ü"."Big Table Ä_id_seq"',
  'sales.customers_id_seq',
  'sales.orders_id_seq',
  'sales.ticket_no',
];
