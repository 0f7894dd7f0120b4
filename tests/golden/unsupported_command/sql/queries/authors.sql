-- name: InsertAuthor :execlastid
INSERT INTO authors (name) VALUES ($1);
