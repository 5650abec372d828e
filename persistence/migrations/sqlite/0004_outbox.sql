-- Events waiting to be published (Kafka), written in the same transaction as the change
-- they describe; the relay deletes a row once the broker acknowledged it.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    entity_key TEXT    NOT NULL,
    payload    TEXT    NOT NULL
);
