-- name: CreateAuthor :one
INSERT INTO authors (name, bio, born) VALUES ($1, $2, $3) RETURNING *;

-- name: GetAuthor :one
SELECT * FROM authors WHERE id = $1;

-- name: ListAuthors :many
SELECT id, name, born FROM authors ORDER BY name, id;

-- name: UpdateAuthorBio :execrows
UPDATE authors SET bio = sqlc.narg(bio) WHERE id = sqlc.arg(id);

-- name: DeleteAuthor :exec
DELETE FROM authors WHERE id = $1;

-- name: AddAuthors :batchexec
INSERT INTO authors (name, born) VALUES ($1, $2);

-- name: CreateBook :one
INSERT INTO books (author_id, title, isbn, price, tags, meta, published_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: GetBookByIsbn :one
SELECT * FROM public.books WHERE isbn = $1;

-- name: BooksByAuthor :many
SELECT b.id, b.title, a.name AS author, b.price
FROM books b JOIN authors a ON a.id = b.author_id
WHERE a.id = $1
ORDER BY b.title, b.id;

-- name: BooksByIds :many
SELECT id, title FROM books WHERE id = ANY($1::bigint[]) ORDER BY id;

-- name: SearchBooks :many
SELECT id, title FROM books WHERE title ILIKE '%' || sqlc.arg(term) || '%' ORDER BY title, id;

-- name: BooksByTag :many
SELECT id, title FROM books WHERE sqlc.arg(tag)::text = ANY(tags) ORDER BY id;

-- name: BooksWithTags :many
SELECT id, title FROM books WHERE tags @> sqlc.arg(wanted)::text[] ORDER BY id;

-- name: SetBookTags :exec
UPDATE books SET tags = $2 WHERE id = $1;

-- name: BookLanguage :many
SELECT id, meta->>'lang' AS lang FROM books WHERE meta->>'lang' = $1 ORDER BY id;

-- name: BooksPublishedBetween :many
SELECT id, title, published_at FROM books
WHERE published_at >= sqlc.arg(since) AND published_at < sqlc.arg(until)
ORDER BY published_at, id;

-- name: BookPriceStats :one
SELECT count(*) AS books, min(price) AS cheapest, max(price) AS dearest,
       avg(price) AS average
FROM books;

-- name: RestockAll :execrows
UPDATE books SET in_stock = TRUE WHERE NOT in_stock;

-- name: UpsertCustomer :one
INSERT INTO customers (id, email, "displayName") VALUES ($1, $2, $3)
ON CONFLICT (email) DO UPDATE SET "displayName" = excluded."displayName"
RETURNING id, email, "displayName";

-- name: CreateOrder :one
INSERT INTO orders (customer_id, placed_at, note) VALUES ($1, $2, $3) RETURNING id, status;

-- name: AddOrderItem :exec
INSERT INTO order_items (order_id, book_id, quantity, unit_price) VALUES ($1, $2, $3, $4);

-- name: AddOrderItems :copyfrom
INSERT INTO order_items (order_id, book_id, quantity, unit_price) VALUES ($1, $2, $3, $4);

-- name: MarkPaid :execrows
UPDATE orders SET status = 'paid' WHERE id = $1 AND status = 'pending';

-- name: OrderTotal :one
SELECT coalesce(sum(quantity * unit_price), 0) AS total
FROM order_items WHERE order_id = $1;

-- name: CountOrdersByStatus :many
SELECT status, count(*) AS orders FROM orders GROUP BY status ORDER BY status;

-- name: OrdersPlacedSince :many
SELECT id, placed_at FROM orders
WHERE placed_at >= sqlc.arg(at)::timestamptz - interval '7 days'
ORDER BY placed_at, id;

-- name: CustomerOrderNumbers :many
WITH numbered AS (
    SELECT customer_id, id,
           row_number() OVER (PARTITION BY customer_id ORDER BY placed_at, id) AS n
    FROM orders
)
SELECT c.email, numbered.id, numbered.n
FROM numbered JOIN customers c ON c.id = numbered.customer_id
ORDER BY c.email, numbered.n;

-- name: AuthorRanking :many
SELECT a.name, count(b.id) AS books,
       rank() OVER (ORDER BY count(b.id) DESC) AS place
FROM authors a LEFT JOIN books b ON b.author_id = a.id
GROUP BY a.id, a.name
ORDER BY place, a.name;

-- name: AuthorsWithoutBooks :many
SELECT a.id, a.name FROM authors a
WHERE NOT EXISTS (SELECT 1 FROM books b WHERE b.author_id = a.id)
ORDER BY a.id;

-- name: TopSellers :many
SELECT book_id, title, sold FROM book_sales ORDER BY sold DESC, book_id LIMIT sqlc.arg(lim);

-- name: LatestOrderPerCustomer :many
SELECT DISTINCT ON (customer_id) customer_id, id, placed_at
FROM orders ORDER BY customer_id, placed_at DESC;

-- name: CancelOldOrders :execrows
UPDATE orders SET status = 'cancelled'
WHERE status = 'pending' AND placed_at < sqlc.arg(before);

-- name: DeleteCancelledOrders :execrows
DELETE FROM orders WHERE status = 'cancelled';

-- name: BooksCheaperThan :many
SELECT id, title, price FROM books WHERE price < $1 ORDER BY price DESC, id;

-- name: DiscountedPrices :many
SELECT id, price, price * 0.9 AS discounted, round(price * 0.9, 2) AS rounded,
       price / 3 AS third, -price AS negated, price::int AS whole
FROM books ORDER BY id;

-- name: PriceByAuthor :many
SELECT author_id, avg(price) AS average, sum(price) AS total, count(*) AS books
FROM books GROUP BY author_id ORDER BY total DESC, author_id;

-- name: PriceGroups :many
SELECT price, count(*) AS books FROM books GROUP BY price ORDER BY price;

-- name: RunningTotal :many
SELECT order_id, book_id,
       sum(quantity * unit_price) OVER (ORDER BY order_id, book_id) AS running
FROM order_items ORDER BY order_id, book_id;

-- name: AverageQuantity :one
SELECT avg(quantity) AS average FROM order_items;

-- name: SetBookPrice :one
UPDATE books SET price = $2 WHERE id = $1 RETURNING price;

-- name: BooksByMeta :many
SELECT id FROM books WHERE meta @> sqlc.arg(filter)::jsonb ORDER BY id;

-- name: BooksWithMetaKey :many
SELECT id FROM books WHERE meta ? sqlc.arg(key)::text ORDER BY id;

-- name: BooksSharingTags :many
SELECT id FROM books WHERE tags && sqlc.arg(any_tags)::text[] ORDER BY id;

-- name: BooksTaggedWithin :many
SELECT id FROM books WHERE tags <@ sqlc.arg(allowed)::text[] ORDER BY id;

-- name: PublishedYears :many
SELECT extract(year FROM published_at) AS year, count(*) AS books
FROM books WHERE published_at IS NOT NULL GROUP BY 1 ORDER BY 1;

-- name: OrderEpochs :many
SELECT id, extract(epoch FROM placed_at) AS epoch, extract(dow FROM placed_at) AS dow
FROM orders ORDER BY id;

-- name: AddAuthorsBulk :many
INSERT INTO authors (name, born)
SELECT unnest(sqlc.arg(names)::text[]), unnest(sqlc.arg(borns)::date[])
RETURNING id, name, born;

-- name: AuthorsInOrder :many
SELECT a.id, a.name FROM authors a
JOIN unnest(sqlc.arg(ids)::int[]) WITH ORDINALITY AS u(id, n) ON u.id = a.id
ORDER BY u.n;
