-- Every mutating command is one deploy row; its steps are journaled before they start.
CREATE TABLE deploys (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  kind          TEXT NOT NULL CHECK (kind IN ('install', 'rollback', 'auto-rollback', 'prune', 'recover')),
  from_version  TEXT,
  to_version    TEXT,
  status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'rolled-back', 'interrupted', 'degraded')),
  step          TEXT,
  started_at    TEXT NOT NULL,
  finished_at   TEXT,
  duration_ms   INTEGER,
  source        TEXT,
  commit_sha    TEXT,
  sha256        TEXT,
  user          TEXT,
  pid           INTEGER,
  error         TEXT,
  parent_id     INTEGER REFERENCES deploys (id)
);
CREATE INDEX deploys_started ON deploys (started_at);
CREATE INDEX deploys_status ON deploys (status);

CREATE TABLE deploy_steps (
  deploy_id   INTEGER NOT NULL REFERENCES deploys (id),
  seq         INTEGER NOT NULL,
  step        TEXT NOT NULL,
  started_at  TEXT NOT NULL,
  PRIMARY KEY (deploy_id, seq)
);

-- Good/bad marks per version: a bad release is not installed again without --force.
CREATE TABLE release_marks (
  version    TEXT PRIMARY KEY,
  state      TEXT NOT NULL CHECK (state IN ('good', 'bad')),
  reason     TEXT,
  marked_at  TEXT NOT NULL,
  deploy_id  INTEGER REFERENCES deploys (id)
);

-- The commit a version's tag pointed at when first installed: a moved tag is refused later.
CREATE TABLE tag_commits (
  version     TEXT PRIMARY KEY,
  commit_sha  TEXT NOT NULL,
  first_seen  TEXT NOT NULL
);

-- Degraded state survives the process: status reports it until a later deploy succeeds.
CREATE TABLE system_state (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
