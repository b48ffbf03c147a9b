//! The fine-tuning form: dataset, label column (its text columns), a base model or a fresh
//! model size, and the few training settings that matter; `POST /api/v1/jobs` queues it and
//! the jobs panel starts watching it. The form checks ranges first; the server's 400 messages
//! are shown next to it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};

use super::Registry;
use super::api::{API, Job};
use super::jobs;
use crate::http::{self, Body};

/// Learning rate offered for a choice: small steps from pretrained weights; 5e-3 for a fresh
/// tiny model (what fitted Baron mouse pancreas in our runs; 1e-3 underfitted); 1e-3 for a
/// fresh small or base model (larger models from scratch are less stable at 5e-3).
pub fn default_lr(base_model: bool, config: &str) -> &'static str {
    match (base_model, config) {
        (true, _) => "5e-5",
        (false, "tiny") => "5e-3",
        _ => "1e-3",
    }
}

/// Training steps the server's split leaves (about 70 % of the cells train).
pub fn estimate_steps(n_cells: u64, epochs: u64, batch_size: u64) -> u64 {
    let train = (n_cells as f64 * 0.7).round() as u64;
    train.div_ceil(batch_size.max(1)) * epochs
}

/// The form's values as typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinetuneInput {
    pub dataset: String,
    pub label_column: String,
    pub base_model: String,
    pub config: String,
    pub epochs: String,
    pub lr: String,
    pub batch_size: String,
    pub max_genes: String,
    pub model_name: String,
}

fn whole(what: &str, v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| format!("{what} must be a whole number from {lo} to {hi}."))
}

impl FinetuneInput {
    /// The job's `params`, or what to fix.
    pub fn params(&self) -> Result<Value, String> {
        if self.dataset.is_empty() {
            return Err("Choose a dataset (upload one first if the list is empty).".into());
        }
        if self.label_column.is_empty() {
            return Err(
                "Choose a label column; this dataset has no text column to learn from.".into(),
            );
        }
        let epochs = whole("Epochs", &self.epochs, 1, 1000)?;
        let batch = whole("Batch size", &self.batch_size, 1, 4096)?;
        let genes = whole("Max genes", &self.max_genes, 8, 4096)?;
        let lr = self
            .lr
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|l| l.is_finite() && *l > 0.0 && *l <= 1.0)
            .ok_or("Learning rate must be a number above 0 and at most 1, e.g. 5e-3.")?;
        let mut p = json!({
            "dataset": self.dataset,
            "label_column": self.label_column,
            "epochs": epochs,
            "batch_size": batch,
            "lr": lr,
            "max_genes": genes,
        });
        if self.base_model.is_empty() {
            p["config"] = json!(self.config);
        } else {
            p["base_model"] = json!(self.base_model);
        }
        let name = self.model_name.trim();
        if !name.is_empty() {
            if let Some(problem) = super::plan::name_problem(name) {
                return Err(format!("Model name: {problem}"));
            }
            p["model_name"] = json!(name);
        }
        Ok(p)
    }
}

/// The fine-tuning form.
#[component]
pub(super) fn FinetuneForm(reg: Registry) -> impl IntoView {
    let dataset = RwSignal::new(String::new());
    let label = RwSignal::new(String::new());
    let base = RwSignal::new(String::new());
    let config = RwSignal::new("tiny".to_string());
    let epochs = RwSignal::new("10".to_string());
    let lr = RwSignal::new(default_lr(false, "tiny").to_string());
    let lr_edited = RwSignal::new(false);
    let batch = RwSignal::new("16".to_string());
    let genes = RwSignal::new("512".to_string());
    let model_name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let datasets = Memo::new(move |_| reg.datasets());
    let models = Memo::new(move |_| reg.models());
    // The selection in effect: the chosen one while it exists, else the first.
    let current = Memo::new(move |_| {
        let all = datasets.get();
        let chosen = dataset.get();
        all.iter().find(|d| d.id == chosen).or(all.first()).cloned()
    });
    let current_label = Memo::new(move |_| {
        let d = current.get()?;
        let chosen = label.get();
        if d.label_columns().iter().any(|c| c.name == chosen) {
            Some(chosen)
        } else {
            d.default_label()
        }
    });
    let current_base = Memo::new(move |_| {
        let chosen = base.get();
        if models.get().iter().any(|m| m.name == chosen) {
            chosen
        } else {
            String::new()
        }
    });
    let suggested_lr = move || default_lr(!current_base.get().is_empty(), &config.get());
    // Follow the suggested rate until the user types one.
    Effect::new(move |_| {
        let s = suggested_lr();
        if !lr_edited.get_untracked() {
            lr.set(s.to_string());
        }
    });
    let steps = move || {
        let d = current.get()?;
        let e = epochs.get().trim().parse::<u64>().ok()?;
        let b = batch.get().trim().parse::<u64>().ok()?;
        Some(format!(
            "About {} training steps ({} cells, ~70 % for training, the rest for validation and test).",
            estimate_steps(d.n_cells, e, b),
            d.n_cells
        ))
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let input = FinetuneInput {
            dataset: current.get_untracked().map(|d| d.id).unwrap_or_default(),
            label_column: current_label.get_untracked().unwrap_or_default(),
            base_model: current_base.get_untracked(),
            config: config.get_untracked(),
            epochs: epochs.get_untracked(),
            lr: lr.get_untracked(),
            batch_size: batch.get_untracked(),
            max_genes: genes.get_untracked(),
            model_name: model_name.get_untracked(),
        };
        message.set(None);
        let params = match input.params() {
            Ok(p) => p,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let Some(token) = reg.token() else {
            error.set(Some("Sign in first.".into()));
            return;
        };
        let mut body = json!({"kind": "finetune", "params": params});
        if let Some(t) = reg.team_name() {
            body["team"] = json!(t);
        }
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let r = http::call(
                "POST",
                &format!("{API}/jobs"),
                Some(&token),
                Body::Json(body.to_string()),
                &[],
            )
            .await;
            busy.set(false);
            match r {
                Ok(r) if r.ok() => match r.json::<Job>() {
                    Ok(job) => {
                        message.set(Some(format!(
                            "Job {} queued; it will register model `{}`.",
                            job.id,
                            job.model_name().unwrap_or("?")
                        )));
                        reg.jobs.update(|j| j.insert(0, job.clone()));
                        jobs::watch_job(reg, job.id);
                    }
                    Err(e) => error.set(Some(e)),
                },
                Ok(r) => error.set(Some(format!(
                    "The server refused the job (HTTP {}): {}",
                    r.status,
                    r.message()
                ))),
                Err(e) => error.set(Some(format!(
                    "Cannot reach the server ({e}). Check your connection and submit again."
                ))),
            }
        });
    };

    let text_input = |id: &'static str,
                      label: &'static str,
                      sig: RwSignal<String>,
                      hint: &'static str| {
        view! {
            <label>{label}" "
                <input id=id type="text" inputmode="decimal" size="6" title=hint
                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
            </label>
        }
    };

    view! {
        <form id="finetune" class="controls" on:submit=submit>
            <label>"Dataset "
                <select id="ft-dataset" on:change=move |ev| dataset.set(event_target_value(&ev))>
                    {move || {
                        let cur = current.get().map(|d| d.id).unwrap_or_default();
                        datasets.get().into_iter().map(|d| {
                            let sel = d.id == cur;
                            view! { <option value=d.id.clone() selected=sel>
                                {format!("{} ({} cells)", d.name, d.n_cells)}</option> }
                        }).collect_view()
                    }}
                </select>
            </label>
            <label>"Label column "
                <select id="ft-label" on:change=move |ev| label.set(event_target_value(&ev))>
                    {move || {
                        let cur = current_label.get().unwrap_or_default();
                        current.get().map(|d| d.label_columns().into_iter().map(|c| {
                            let sel = c.name == cur;
                            let text = match c.distinct {
                                Some(n) => format!("{} ({n} values)", c.name),
                                None => c.name.clone(),
                            };
                            view! { <option value=c.name.clone() selected=sel>{text}</option> }
                        }).collect_view())
                    }}
                </select>
            </label>
            <label>"Base model "
                <select id="ft-base" on:change=move |ev| base.set(event_target_value(&ev))>
                    <option value="" selected=move || current_base.get().is_empty()>"none: train a fresh model"</option>
                    {move || {
                        let cur = current_base.get();
                        models.get().into_iter().map(|m| {
                            let sel = m.name == cur;
                            view! { <option value=m.name.clone() selected=sel>
                                {format!("{} (v{})", m.name, m.versions.last().copied().unwrap_or(0))}</option> }
                        }).collect_view()
                    }}
                </select>
            </label>
            <label>"Fresh model size "
                <select id="ft-config" disabled=move || !current_base.get().is_empty()
                    on:change=move |ev| config.set(event_target_value(&ev))>
                    {["tiny", "small", "base"].into_iter().map(|c| view! {
                        <option value=c selected=move || config.get() == c>{c}</option>
                    }).collect_view()}
                </select>
            </label>
            {text_input("ft-epochs", "Epochs", epochs, "1 to 1000")}
            <label>"Learning rate "
                <input id="ft-lr" type="text" inputmode="decimal" size="7"
                    prop:value=move || lr.get()
                    on:input=move |ev| { lr_edited.set(true); lr.set(event_target_value(&ev)); } />
                <span class="note">{move || format!(" suggested {}", suggested_lr())}</span>
            </label>
            {text_input("ft-batch", "Batch size", batch, "cells per step, 1 to 4096")}
            {text_input("ft-max-genes", "Max genes", genes, "genes per cell, 8 to 4096")}
            <label>"Model name "
                <input id="ft-model-name" type="text" size="18"
                    placeholder=move || current.get().map(|d| format!("{}-finetune", d.name)).unwrap_or_default()
                    prop:value=move || model_name.get()
                    on:input=move |ev| model_name.set(event_target_value(&ev)) />
            </label>
            <button id="ft-submit" type="submit" class="primary"
                disabled=move || busy.get() || datasets.with(Vec::is_empty)>"Start fine-tuning"</button>
        </form>
        <p class="note" id="ft-estimate">{steps}</p>
        <Show when=move || datasets.with(Vec::is_empty)>
            <p class="note">"No dataset yet: upload one above."</p>
        </Show>
        <p id="ft-error" class="error" role="alert">{move || error.get()}</p>
        <p id="ft-message" class="ok" role="status">{move || message.get()}</p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> FinetuneInput {
        FinetuneInput {
            dataset: "ds_1".into(),
            label_column: "cell_type".into(),
            base_model: String::new(),
            config: "tiny".into(),
            epochs: "1".into(),
            lr: "5e-3".into(),
            batch_size: "16".into(),
            max_genes: "64".into(),
            model_name: String::new(),
        }
    }

    #[test]
    fn params_for_a_fresh_model_and_a_base_model() {
        let p = input().params().unwrap();
        assert_eq!(
            p,
            json!({"dataset": "ds_1", "label_column": "cell_type", "epochs": 1, "batch_size": 16,
                   "lr": 0.005, "max_genes": 64, "config": "tiny"})
        );
        let p = FinetuneInput {
            base_model: "gc-base".into(),
            model_name: " my-model ".into(),
            ..input()
        }
        .params()
        .unwrap();
        assert_eq!(p["base_model"], "gc-base");
        assert_eq!(p["model_name"], "my-model");
        assert!(p.get("config").is_none(), "either base_model or config");
    }

    #[test]
    fn bad_values_say_what_to_fix() {
        let err = |i: FinetuneInput| i.params().unwrap_err();
        assert!(
            err(FinetuneInput {
                epochs: "0".into(),
                ..input()
            })
            .contains("Epochs")
        );
        assert!(
            err(FinetuneInput {
                epochs: "2.5".into(),
                ..input()
            })
            .contains("whole number")
        );
        assert!(
            err(FinetuneInput {
                batch_size: "5000".into(),
                ..input()
            })
            .contains("Batch size")
        );
        assert!(
            err(FinetuneInput {
                max_genes: "4".into(),
                ..input()
            })
            .contains("8 to 4096")
        );
        assert!(
            err(FinetuneInput {
                lr: "0".into(),
                ..input()
            })
            .contains("Learning rate")
        );
        assert!(
            err(FinetuneInput {
                lr: "fast".into(),
                ..input()
            })
            .contains("5e-3")
        );
        assert!(
            err(FinetuneInput {
                dataset: String::new(),
                ..input()
            })
            .contains("upload one")
        );
        assert!(
            err(FinetuneInput {
                label_column: String::new(),
                ..input()
            })
            .contains("text column")
        );
        assert!(
            err(FinetuneInput {
                model_name: "a b".into(),
                ..input()
            })
            .contains("Model name")
        );
    }

    #[test]
    fn suggested_rates_and_step_estimate() {
        assert_eq!(default_lr(true, "tiny"), "5e-5");
        assert_eq!(default_lr(false, "tiny"), "5e-3");
        assert_eq!(default_lr(false, "small"), "1e-3");
        // Baron: 822 cells, batch 16, one epoch → the trainer reported 36 steps.
        assert_eq!(estimate_steps(822, 1, 16), 36);
        assert_eq!(estimate_steps(822, 10, 16), 360);
        assert_eq!(estimate_steps(0, 3, 0), 0);
    }
}
