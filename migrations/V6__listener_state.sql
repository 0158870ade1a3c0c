-- The recorder's HTTP hook listener (`start --listen`), in its heartbeat row:
-- the address it listens on (NULL: no listener) and the payloads it received.
ALTER TABLE recorder_state ADD COLUMN listen_address TEXT;
ALTER TABLE recorder_state ADD COLUMN http_payloads INTEGER NOT NULL DEFAULT 0;
