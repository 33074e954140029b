-- Nothing else refers to these tables; the locks they mirror live outside the schema.
DROP TABLE room_owners;
DROP TABLE nodes;
