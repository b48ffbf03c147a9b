-- Lineage and model cards of model versions (same in both dialects). A version made by a job
-- records the job, the dataset it was trained on and the version it started from; a version
-- imported from a folder records the folder's model card (model_card.md or README.md).

ALTER TABLE model_versions ADD COLUMN parent_version_id TEXT REFERENCES model_versions(id);
ALTER TABLE model_versions ADD COLUMN dataset_id TEXT REFERENCES datasets(id);
ALTER TABLE model_versions ADD COLUMN job_id TEXT REFERENCES jobs(id);
ALTER TABLE model_versions ADD COLUMN model_card TEXT;
