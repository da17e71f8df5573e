-- Indexes for the lookups `GET /config` makes when a node's entries are not cached (a whole
-- fleet booting at once): without them each lookup reads every server or every job.
-- Keep in step with ../sqlite/0005_lookup_indexes.sql.

-- `find_servers_by_uuid` compares `lower(uuid)`: an index on the plain column is not used.
CREATE INDEX servers_uuid_lower ON servers (lower(uuid));

-- `latest_server_job`: a server's newest job of a kind (the label and taint job's guard).
CREATE INDEX jobs_server_kind ON jobs (server_id, kind, id);
