//! The OpenAPI 3.1 document, written by hand (kept next to the router; a test checks that
//! every routed path appears here).

use axum::Json;
use serde_json::{Value, json};

use crate::jobs::JobKind;

/// A JSON response referring to a schema.
fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// One operation with the standard error responses.
fn op(
    summary: &str,
    auth: bool,
    params: Value,
    body: Option<Value>,
    success: (&str, Value),
) -> Value {
    let err = json!({ "$ref": "#/components/responses/Error" });
    let mut responses =
        json!({ success.0: success.1, "400": err, "404": err, "413": err, "500": err });
    if auth {
        responses["401"] = err.clone();
        responses["403"] = err.clone();
    }
    let mut o = json!({ "summary": summary, "parameters": params, "responses": responses });
    if !auth {
        o["security"] = json!([]);
    }
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

fn query_param(name: &str, required: bool) -> Value {
    json!({ "name": name, "in": "query", "required": required, "schema": { "type": "string" } })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn obj() -> Value {
    json!({ "type": "object" })
}

fn arr() -> Value {
    json!({ "type": "array", "items": { "type": "object" } })
}

/// The `POST /jobs` body.
fn job_body() -> Value {
    let s = |d: &str| json!({ "type": "string", "description": d });
    let i = |d: &str| json!({ "type": "integer", "description": d });
    let n = |d: &str| json!({ "type": "number", "description": d });
    let b = |d: &str| json!({ "type": "boolean", "description": d });
    let list =
        |d: &str| json!({ "type": "array", "items": { "type": "string" }, "description": d });
    let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    // Two halves: one `json!` of every property overflows the macro recursion limit.
    let mut props = json!({
        "dataset": s("dataset id or name of the team (required)"),
        "label_column": s("finetune: text obs column with the cell type (default cell_type); \
            fate (required): text obs column whose values source and target name"),
        "base_model": s("finetune/pretrain: model id or name to start from (default: fresh model)"),
        "base_version": s("version number or alias of base_model (default latest)"),
        "config": s("fresh model size without base_model: tiny, small (default), base"),
        "model": s("annotate: classifier model id or name (required); grn/fate/perturb: \
            model id or name with a token_dict.json (required)"),
        "version": { "type": ["string", "integer"],
            "description": "annotate/grn/fate/perturb: version number or alias (default latest)" },
        "model_name": s("finetune/pretrain: name the output is registered as (default <dataset>-<kind>)"),
        "epochs": i("1-1000 (finetune default 10, pretrain 1)"),
        "batch_size": i("1-4096 (default 8; annotate/grn/fate/perturb 16)"),
        "lr": n("peak learning rate in (0, 1] (default 5e-5)"),
        "weight_decay": n("finetune: 0-1 (default 0.001)"),
        "warmup_steps": i("finetune: default 100"),
        "freeze_layers": i("finetune: default 0"),
        "max_genes": i("8-4096 (default 2048)"),
        "max_cells": i("random subsample, at least 10"),
        "val_fraction": n("finetune: default 0.1"),
        "test_fraction": n("finetune: default 0.2"),
        "seed": i("default 42"),
        "checkpoint_every": i("steps between resumable checkpoints")
    });
    let more = json!({
        "with_species": b("finetune: pass species to the model"),
        "tfs": list("grn: TFs to delete (Ensembl ids or symbols); default: the top_tfs of \
            the server's TF→target table"),
        "top_tfs": i("grn without tfs: the N TFs of the TF→target table expressed in \
            the most cells (default 20; needs the server's GENECOMPASS_TF_TARGETS)"),
        "use_priors": b("grn: score the rankings against the server's TF→target table \
            (default true)"),
        "min_cells": i("grn: a candidate target must be expressed with the TF in this \
            many cells (default 3)"),
        "source": list("fate (required): label_column values of the source cells"),
        "target": list("fate (required): label_column values of the target cells"),
        "genes": list("fate: genes to test (default: the candidates best marking the \
            target); perturb (required): genes to perturb"),
        "candidates": i("fate: marker genes tested when no genes are named (default 50)"),
        "mode": { "type": "string", "enum": ["overexpress", "delete"],
            "description": "fate (default overexpress) / perturb (default delete)" },
        "factor": n("perturb: over-expression factor (default 10000)"),
        "joint": b("perturb: perturb all genes together in each cell (default false)")
    });
    if let (Some(p), Value::Object(t)) = (props.as_object_mut(), more) {
        p.extend(t);
    }
    json_body(json!({
        "type": "object", "required": ["kind"],
        "properties": {
            "team": s("team name or id (optional for members of one team)"),
            "kind": { "type": "string", "enum": kinds,
                "description": "finetune and pretrain register a model version; annotate, grn, \
                    fate and perturb tokenize the dataset for `model` and register their output \
                    file as result_path (grn and fate also record results)" },
            "params": { "type": "object", "description": "unknown keys are refused (400)",
                "properties": props }
        }
    }))
}

/// The document as a value.
pub fn spec() -> Value {
    let none = json!([]);
    let id = || json!([path_param("id")]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "GeneCompass registry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Team registry of datasets, checkpoints and results. Authenticate with \
                `Authorization: Bearer <token>` (from `genecompass user add` or /auth/login). \
                Errors are `{\"error\": {\"code\": ..., \"message\": ...}}`."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": ok("Error", json!({ "$ref": "#/components/schemas/Error" })) },
            "schemas": { "Error": {
                "type": "object", "required": ["error"],
                "properties": { "error": { "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
            } }
        },
        "paths": {
            "/health": { "get": op("Liveness and database status", false, none.clone(), None,
                ("200", ok("status, database (sqlite|postgres), version", obj()))) },
            "/openapi.json": { "get": op("This document", false, none.clone(), None, ("200", ok("OpenAPI", obj()))) },
            "/auth/login": { "post": op("Exchange a password for a new API token", false, none.clone(),
                Some(json_body(json!({ "type": "object", "required": ["name", "password"],
                    "properties": { "name": {"type": "string"}, "password": {"type": "string"},
                                    "label": {"type": "string"} } }))),
                ("201", ok("id and token (shown once)", obj()))) },
            "/auth/session": { "post": op("Sign the web app in with cookies: HttpOnly gc_session and \
                readable gc_csrf, which requests made with the cookie must echo in X-CSRF-Token \
                on every method but GET/HEAD/OPTIONS", false, none.clone(),
                Some(json_body(json!({ "type": "object", "required": ["name", "password"],
                    "properties": { "name": {"type": "string"}, "password": {"type": "string"} } }))),
                ("201", ok("csrf_token and user", obj()))) },
            "/auth/logout": { "post": op("End the session (or revoke the bearer token) and clear the cookies",
                true, none.clone(), None, ("204", ok("ended", obj()))) },
            "/me": { "get": op("The caller and their teams", true, none.clone(), None, ("200", ok("user", obj()))) },
            "/tokens": {
                "get": op("The caller's tokens", true, none.clone(), None, ("200", ok("tokens", arr()))),
                "post": op("New token for the caller", true, none.clone(),
                    Some(json_body(json!({ "type": "object", "required": ["label"],
                        "properties": { "label": {"type": "string"} } }))),
                    ("201", ok("id and token (shown once)", obj())))
            },
            "/tokens/{id}": { "delete": op("Revoke a token", true, id(), None, ("200", ok("revoked", obj()))) },
            "/datasets": {
                "get": op("Datasets of the caller's teams", true, json!([query_param("team", false)]), None,
                    ("200", ok("datasets", arr()))),
                "post": op("Upload a dataset file (editor); body is the raw file, streamed", true,
                    json!([query_param("name", true), query_param("team", false)]),
                    Some(json!({ "required": true, "content": { "application/octet-stream":
                        { "schema": { "type": "string", "format": "binary" } } } })),
                    ("201", ok("the registered dataset with extracted metadata", obj())))
            },
            "/datasets/{id}": { "get": op("One dataset", true, id(), None, ("200", ok("dataset", obj()))) },
            "/datasets/{id}/download": { "get": op("The file; honours Range / If-None-Match", true, id(), None,
                ("200", json!({ "description": "file (206 for ranges)",
                    "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } }))) },
            "/checkpoints/import": { "post": op("Import a server-local model directory (admin)", true, none.clone(),
                Some(json_body(json!({ "type": "object", "required": ["path", "name"],
                    "properties": { "path": {"type": "string"}, "name": {"type": "string"},
                        "team": {"type": "string"}, "aliases": { "type": "array", "items": {"type": "string"} } } }))),
                ("201", ok("the new model version", obj()))) },
            "/models": { "get": op("Models of the caller's teams", true, none.clone(), None, ("200", ok("models", arr()))) },
            "/models/{id}": { "get": op("One model with versions and aliases", true, id(), None, ("200", ok("model", obj()))) },
            "/models/{id}/versions/{version}": { "get": op("A version by number or alias", true,
                json!([path_param("id"), path_param("version")]), None, ("200", ok("version", obj()))) },
            "/models/{id}/versions/{version}/files/{path}": { "get": op(
                "One file of a version (path relative to the model directory, e.g. config.json); \
                 ETag is its SHA-256; honours Range / If-None-Match", true,
                json!([path_param("id"), path_param("version"), path_param("path")]), None,
                ("200", json!({ "description": "file (206 for ranges, 304 when the ETag matches)",
                    "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } }))) },
            "/priors": { "get": op("Prior-knowledge sets of the caller's teams, with versions", true,
                none.clone(), None, ("200", ok("prior sets", arr()))) },
            "/priors/import": { "post": op("Import a server-local prior store folder (priors build-* / \
                load-official output) as the next version of a set (admin); 200 when that store is \
                already a version of the set", true, none.clone(),
                Some(json_body(json!({ "type": "object", "required": ["path", "name"],
                    "properties": { "path": {"type": "string"}, "name": {"type": "string"},
                        "team": {"type": "string"} } }))),
                ("201", ok("the new prior version", obj()))) },
            "/priors/{id}": { "get": op("One prior set", true, id(), None, ("200", ok("prior set", obj()))) },
            "/priors/{id}/versions/{version}": { "get": op("A prior version (number or latest): kinds, \
                genes, width, build manifest, files and the checkpoints built from it", true,
                json!([path_param("id"), path_param("version")]), None, ("200", ok("prior version", obj()))) },
            "/priors/{id}/versions/{version}/files/{path}": { "get": op("One file of a prior version; \
                ETag is its SHA-256; honours Range / If-None-Match", true,
                json!([path_param("id"), path_param("version"), path_param("path")]), None,
                ("200", json!({ "description": "file",
                    "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } }))) },
            "/models/{id}/aliases/{alias}": { "put": op("Point an alias at a version (admin)", true,
                json!([path_param("id"), path_param("alias")]),
                Some(json_body(json!({ "type": "object", "required": ["version"],
                    "properties": { "version": {"type": "integer"} } }))),
                ("200", ok("the version", obj()))) },
            "/jobs": {
                "get": op("Jobs of the caller's teams, newest first", true,
                    json!([query_param("team", false), query_param("state", false),
                        query_param("kind", false), query_param("limit", false)]),
                    None, ("200", ok("jobs", arr()))),
                "post": op("Queue a finetune, pretrain, annotate, grn, fate or perturb job \
                    (editor); params are validated against the registry", true, none.clone(),
                    Some(job_body()),
                    ("201", ok("the queued job, defaults filled in", obj())))
            },
            "/jobs/{id}": { "get": op("One job: state, progress, last step event, error, outputs", true,
                id(), None, ("200", ok("job", obj()))) },
            "/jobs/{id}/cancel": { "post": op("Cancel (editor): queued jobs at once (200), running \
                ones by SIGTERM then SIGKILL after the grace period (202); 409 if already ended", true,
                id(), None, ("200", ok("job", obj()))) },
            "/jobs/{id}/logs": { "get": op("The end of the trainer's log", true,
                json!([path_param("id"), query_param("stream", false), query_param("tail_bytes", false)]),
                None, ("200", json!({ "description": "stderr (default) or stdout (JSON events)",
                    "content": { "text/plain": { "schema": { "type": "string" } } } }))) },
            "/jobs/{id}/events": { "get": op("Server-sent events: state (the job, first and on each \
                change), progress (step, total_steps, loss, eta_s, progress), eval, trainer; ends \
                with the final state", true, id(), None,
                ("200", json!({ "description": "event stream",
                    "content": { "text/event-stream": { "schema": { "type": "string" } } } }))) },
            "/results": {
                "get": op("Model × dataset × task metrics", true,
                    json!([query_param("model", false), query_param("dataset", false), query_param("task", false)]),
                    None, ("200", ok("rows", arr()))),
                "post": op("Record a metric (editor)", true, none,
                    Some(json_body(json!({ "type": "object", "required": ["task", "metric", "value"],
                        "properties": { "team": {"type": "string"}, "model_version_id": {"type": "string"},
                            "dataset_id": {"type": "string"}, "task": {"type": "string"},
                            "metric": {"type": "string"}, "value": {"type": "number"} } }))),
                    ("201", ok("id", obj())))
            }
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
