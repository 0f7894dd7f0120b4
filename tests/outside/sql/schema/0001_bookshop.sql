-- A bookshop, written as ordinary PostgreSQL application schemas are: serial and uuid
-- keys, an enum, arrays, jsonb, timestamps with and without zone, a mixed-case column,
-- schema-qualified names, a view.
-- migrate:up
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled');

CREATE TABLE public.authors (
    id         SERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    bio        TEXT,
    born       DATE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE books (
    id           BIGSERIAL PRIMARY KEY,
    author_id    INTEGER NOT NULL REFERENCES authors (id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    isbn         TEXT UNIQUE,
    price        NUMERIC(10, 2) NOT NULL CHECK (price >= 0),
    tags         TEXT[] NOT NULL DEFAULT '{}',
    meta         JSONB NOT NULL DEFAULT '{}'::jsonb,
    published_at TIMESTAMP,
    in_stock     BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE INDEX idx_books_author ON books (author_id);

CREATE TABLE customers (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    "displayName" TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    customer_id UUID NOT NULL REFERENCES customers (id),
    status      order_status NOT NULL DEFAULT 'pending',
    placed_at   TIMESTAMPTZ NOT NULL,
    note        TEXT
);

CREATE TABLE order_items (
    order_id   BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    book_id    BIGINT NOT NULL REFERENCES books (id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    unit_price NUMERIC(10, 2) NOT NULL,
    PRIMARY KEY (order_id, book_id)
);

CREATE VIEW book_sales AS
    SELECT b.id AS book_id, b.title, coalesce(sum(oi.quantity), 0)::bigint AS sold
    FROM books b LEFT JOIN order_items oi ON oi.book_id = b.id
    GROUP BY b.id, b.title;

-- migrate:down
DROP VIEW book_sales;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE customers;
DROP TABLE books;
DROP TABLE authors;
DROP TYPE order_status;
