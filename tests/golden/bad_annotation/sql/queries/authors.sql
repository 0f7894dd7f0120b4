-- name: NoCommand
SELECT id FROM authors;

-- name: WrongCommand :fetch
SELECT id FROM authors;
