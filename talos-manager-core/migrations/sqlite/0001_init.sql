-- The whole domain model of DESIGN.md. Keep in step with ../postgres/0001_init.sql: the test
-- `migrations::backends_agree` compares the tables and columns both produce.

CREATE TABLE provider_accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL CHECK (provider IN ('hetzner_robot', 'hetzner_cloud')),
    name TEXT NOT NULL,
    -- AEAD ciphertext (see store/crypto.rs): Robot webservice password or Cloud API token.
    secret BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX provider_accounts_name ON provider_accounts (provider, lower(name));

CREATE TABLE vswitches (
    -- The Robot vSwitch id.
    id BIGINT PRIMARY KEY,
    provider_account_id BIGINT NOT NULL REFERENCES provider_accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    vlan INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE clusters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    -- AEAD ciphertext of the Talos secrets bundle (YAML).
    secrets BLOB NOT NULL,
    vswitch_id BIGINT REFERENCES vswitches (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    install_image TEXT NOT NULL,
    kubernetes_version TEXT NOT NULL,
    kubespan BOOLEAN NOT NULL,
    patch TEXT NOT NULL,
    patch_control_plane TEXT NOT NULL,
    patch_worker TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE schematics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    -- The id the Image Factory returned for `body`; NULL until registered.
    factory_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL CHECK (provider IN ('hetzner_robot', 'hetzner_cloud')),
    -- Robot server number or Cloud server id, as text: the two id spaces may collide.
    provider_id TEXT NOT NULL,
    provider_account_id BIGINT NOT NULL REFERENCES provider_accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ipv4 TEXT,
    ipv6 TEXT,
    product TEXT NOT NULL,
    data_center TEXT NOT NULL,
    status TEXT NOT NULL,
    cancelled BOOLEAN NOT NULL,
    architecture TEXT NOT NULL CHECK (architecture IN ('amd64', 'arm64')),
    vswitch_id BIGINT REFERENCES vswitches (id) ON DELETE SET NULL,
    cluster_id BIGINT REFERENCES clusters (id) ON DELETE SET NULL,
    accessible BOOLEAN NOT NULL,
    uuid TEXT,
    lsblk TEXT,
    bootstrap_disk TEXT,
    bootstrap_disk_wwid TEXT,
    schematic_id BIGINT REFERENCES schematics (id) ON DELETE SET NULL,
    rescue_activated_at TEXT,
    last_request_for_configuration_at TEXT,
    last_configured_at TEXT,
    label_and_taint_job_completed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (provider, provider_id)
);
CREATE INDEX servers_ipv4 ON servers (ipv4);
CREATE INDEX servers_uuid ON servers (uuid);

CREATE TABLE machine_configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id BIGINT NOT NULL UNIQUE REFERENCES servers (id) ON DELETE CASCADE,
    -- A config in use cannot be deleted.
    config_id BIGINT NOT NULL REFERENCES configs (id) ON DELETE RESTRICT,
    hostname TEXT NOT NULL,
    private_ip TEXT NOT NULL,
    install_disk TEXT NOT NULL,
    ephemeral_disk_identifier TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE label_taint_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- A substring of the server name.
    name_match TEXT NOT NULL,
    labels TEXT NOT NULL,
    taints TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    talos_version TEXT NOT NULL,
    default_schematic_id BIGINT REFERENCES schematics (id) ON DELETE SET NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    server_id BIGINT REFERENCES servers (id) ON DELETE SET NULL,
    -- Kind-specific arguments as JSON (never secrets).
    args TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL,
    last_error TEXT,
    run_after TEXT NOT NULL,
    locked_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX jobs_runnable ON jobs (status, run_after);

CREATE TABLE job_log_lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX job_log_lines_job ON job_log_lines (job_id, id);
