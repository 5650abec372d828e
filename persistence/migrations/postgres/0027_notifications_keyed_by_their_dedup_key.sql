-- The record of a sent message, lighter: every order's payment request writes one, in the
-- orders' batch statement, where it was the costliest part (issue 14: 13.7 us a row against
-- an order's 9.8, auto_explain of a cost.sh run). Its identity is its dedup key, which was
-- already unique: the BIGSERIAL id (a sequence call and a second B-tree per row) goes, the
-- key becomes the primary key, and a user's messages are listed by send time. The body is
-- JSON the engine wrote itself and nothing queries inside it: text, as the outbox's (0010).
ALTER TABLE notifications DROP COLUMN id;
ALTER TABLE notifications DROP CONSTRAINT notifications_dedup_key_key;
ALTER TABLE notifications ADD PRIMARY KEY (dedup_key);
ALTER TABLE notifications ALTER COLUMN body TYPE TEXT USING body::text;
CREATE INDEX notifications_by_user ON notifications (user_id, sent_at_ms);
