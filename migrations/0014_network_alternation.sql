-- Anomaly detection (README: "Anomalies"): a session used from two networks by turns within
-- minutes is a cookie in two places, the owner's and a copy. A change of the watched fingerprint
-- (the network) is written by one statement that also keeps the network before it and counts
-- quick returns to it, so the request path needs no statement of its own to notice.
ALTER TABLE sessions
    ADD COLUMN previous_watch   BYTEA,                     -- the watched fingerprint before the latest change
    ADD COLUMN watch_changed_at TIMESTAMPTZ,               -- when it last changed
    ADD COLUMN network_returns  INTEGER NOT NULL DEFAULT 0; -- back to the network just left, each within the window
