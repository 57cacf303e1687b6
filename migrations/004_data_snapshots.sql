-- Snapshots of the app's databases taken before a switch (the files live in a root-only folder
-- named after the deploy); restored_by names the deploy that wrote one back.
CREATE TABLE data_snapshots (
  deploy_id     INTEGER PRIMARY KEY REFERENCES deploys (id),
  from_version  TEXT,
  to_version    TEXT,
  taken_at      TEXT NOT NULL,
  databases     TEXT NOT NULL,
  restored_at   TEXT,
  restored_by   INTEGER REFERENCES deploys (id)
);
CREATE INDEX data_snapshots_from ON data_snapshots (from_version);
