-- What a dataset's genes are (same in both dialects): JSON of the server's `GeneMeta` (species,
-- how it was told, identifier kind, genes recognised by the HGNC/MGI nomenclature, ambiguous
-- symbols); NULL for rows registered before this migration or when the species is unknown.
ALTER TABLE datasets ADD COLUMN gene_report TEXT;
