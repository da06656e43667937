-- Sessions and refresh tokens (docs/auth.md, "Sessions, refresh and
-- revocation"). A login opens a session (its id is the access tokens' `sid`)
-- with one live refresh token; a refresh spends it and issues the next one;
-- presenting a spent one revokes the session (token theft: one of the two
-- holders is not the owner). Logout revokes the session. Tokens are stored as
-- SHA-256 hex only. revoked_seq orders revocations (session_revocations.seq
-- hands them out) so that the gateway can poll "revoked after N".
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    revoked_seq BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_seq);

CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    spent_ms BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE session_revocations (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO session_revocations (id, seq) VALUES (1, 0);
