-- Retention (README: "What we store about you, and for how long"): the reaper deletes security
-- events older than `event_retention_days` and cuts the addresses in events older than
-- `address_retention_days` to their network prefix. Both walk events by age, so both need an
-- index on it (the per-user one cannot serve a walk over every account); the second walks only
-- the events whose address is still whole, so a pass never rescans the ones it has already cut.
CREATE INDEX security_events_occurred_at ON security_events (occurred_at);
CREATE INDEX security_events_whole_address ON security_events (occurred_at)
    WHERE ip <> '' AND strpos(ip, '/') = 0;
