-- Bootstrap jobs: how far a running job has come, and at most one active bootstrap per server.

-- Percent of the current long step (the image write), 0-100; NULL when unknown.
ALTER TABLE jobs ADD COLUMN progress INTEGER;

-- Two bootstraps of one server at once would write the same disk: the second enqueue fails.
CREATE UNIQUE INDEX jobs_one_active_bootstrap ON jobs (server_id)
    WHERE kind = 'bootstrap' AND status IN ('queued', 'running');
