-- Who set a release's mark: the health gate, a history rebuild, or an operator (`release mark`).
ALTER TABLE release_marks ADD COLUMN marked_by TEXT;

-- Every mark ever set, newest last: an operator's word is audited like a deploy (`release history`).
CREATE TABLE mark_events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  version    TEXT NOT NULL,
  state      TEXT NOT NULL CHECK (state IN ('good', 'bad')),
  reason     TEXT,
  marked_by  TEXT NOT NULL,
  user       TEXT,
  marked_at  TEXT NOT NULL,
  deploy_id  INTEGER REFERENCES deploys (id)
);
CREATE INDEX mark_events_at ON mark_events (marked_at);
