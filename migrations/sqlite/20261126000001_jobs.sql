-- Jobs (SQLite dialect; keep in step with ../postgres/): the stub table of the first migration
-- becomes the queue of training / annotation jobs run by the server's local or Slurm runner.
-- `state`: queued | running | succeeded | failed | cancelled (checked by the server).

ALTER TABLE jobs RENAME COLUMN status TO state;
ALTER TABLE jobs RENAME COLUMN spec TO params;
ALTER TABLE jobs ADD COLUMN runner TEXT NOT NULL DEFAULT 'local' CHECK (runner IN ('local', 'slurm'));
-- Process id (local) or Slurm job id of the current attempt.
ALTER TABLE jobs ADD COLUMN external_id TEXT;
-- CUDA_VISIBLE_DEVICES given to the current attempt (local runner with --gpus).
ALTER TABLE jobs ADD COLUMN gpu TEXT;
-- Fraction done, 0..1, from the trainer's step events.
ALTER TABLE jobs ADD COLUMN progress REAL NOT NULL DEFAULT 0;
-- Latest step event as JSON (step, total_steps, loss, eta_s, ...).
ALTER TABLE jobs ADD COLUMN last_event TEXT;
ALTER TABLE jobs ADD COLUMN error TEXT;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- 1: the next start continues the trainer's run folder (`--resume`).
ALTER TABLE jobs ADD COLUMN resume INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN dataset_id TEXT REFERENCES datasets(id);
ALTER TABLE jobs ADD COLUMN base_version_id TEXT REFERENCES model_versions(id);
-- What the job produced: a registered model version and/or a file in the job folder.
ALTER TABLE jobs ADD COLUMN model_version_id TEXT REFERENCES model_versions(id);
ALTER TABLE jobs ADD COLUMN result_path TEXT;
ALTER TABLE jobs ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_team ON jobs (team_id, created_at);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX results_job ON results (job_id);
