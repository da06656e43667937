-- Login failure counters (docs/services/user.md, "Login throttling"): in the
-- database so that every worker and every instance shares them and a restart
-- keeps them. key: 'a:' + a hash of the normalised email (an account, known or
-- not), 'c:' + a hash of the client address, or 'g' (the global budget, whose
-- last_ms is the start of its current window). Rows quiet for longer than the
-- counting window are pruned after a successful login.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    blocked_until_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_last ON login_failures (last_ms);
INSERT INTO login_failures (key, failures, last_ms, blocked_until_ms) VALUES ('g', 0, 0, 0);
