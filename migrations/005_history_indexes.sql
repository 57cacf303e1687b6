-- status, list and rollback ask "which versions were current after a successful deploy, most
-- recent first": with this index that is one short seek per good mark (newest id first), never a
-- scan of every deploy, however many years of history the device keeps.
CREATE INDEX deploys_version ON deploys (to_version, status, id);
