-- Who may do what: users with a role (admin, engineer, customer), their login sessions and API
-- tokens (only a SHA-256 of each token is kept), and the audit log of who did what.

CREATE TABLE users (
    id            serial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,100}$'),
    password_hash text NOT NULL,                  -- argon2id (api/auth.py)
    role          text NOT NULL CHECK (role IN ('admin', 'engineer', 'customer')),
    customer_id   integer REFERENCES customers(id),  -- a customer user's own customer
    customers     integer[] NOT NULL DEFAULT '{}',   -- an engineer's assigned customers; empty: all
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);

CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users(id),
    kind          text NOT NULL CHECK (kind IN ('session', 'api')),
    name          text NOT NULL DEFAULT '',
    token_sha256  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,                    -- NULL: until revoked (API tokens)
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    time    timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,          -- user.add, user.disable, token.create, token.revoke, login.failed, …
    target  text NOT NULL DEFAULT '',
    detail  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_time ON audit_log (time DESC);
