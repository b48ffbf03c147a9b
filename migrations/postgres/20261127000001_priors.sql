-- Prior-knowledge stores as registry artifacts (postgres dialect; keep in step with the other
-- folder). A prior set is a named series of immutable versions; each version is one store
-- folder (`genecompass-train priors build-*` / `load-official` output) whose files live in the
-- blob store. Model versions link to the prior version whose tables they were built with.

CREATE TABLE prior_sets (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (team_id, name)
);

CREATE TABLE prior_versions (
    id               TEXT PRIMARY KEY,
    prior_set_id     TEXT NOT NULL REFERENCES prior_sets(id),
    version          BIGINT NOT NULL,
    -- SHA-256 of the store's priors.json (which holds every table's hash and the build inputs).
    manifest_sha256  TEXT NOT NULL,
    manifest         TEXT NOT NULL,
    -- JSON list of the kinds held: promoter, co_exp, gene_family, peca_grn.
    kinds            TEXT NOT NULL,
    genes            BIGINT NOT NULL,
    width            BIGINT NOT NULL,
    source_path      TEXT NOT NULL,
    created_by       TEXT NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    UNIQUE (prior_set_id, version),
    UNIQUE (prior_set_id, manifest_sha256)
);

CREATE TABLE prior_version_files (
    version_id  TEXT NOT NULL REFERENCES prior_versions(id),
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    PRIMARY KEY (version_id, path)
);

CREATE INDEX prior_versions_manifest ON prior_versions (manifest_sha256);

ALTER TABLE model_versions ADD COLUMN prior_version_id TEXT REFERENCES prior_versions(id);
