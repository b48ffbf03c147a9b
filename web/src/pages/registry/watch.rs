//! What the page knows about the watched job, built from its event stream (`state`,
//! `progress`, `eval`, `trainer` events) and from the trainer's earlier JSON lines
//! (`GET /jobs/{id}/logs?stream=stdout`), in any order and with repeats: steps are keyed by
//! number, so a resumed run or a history that overlaps the live stream draws each step once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::Job;

/// The watched job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watch {
    /// The job as last reported (`state` events).
    pub job: Job,
    /// Whether a `state` event has arrived.
    pub has_state: bool,
    /// Latest step and the run's total.
    pub step: u64,
    /// Steps in the whole run (0: not known yet).
    pub total_steps: u64,
    /// Loss of the latest step.
    pub loss: Option<f64>,
    /// Seconds left, as the trainer estimates.
    pub eta_s: Option<f64>,
    /// Training speed.
    pub cells_per_s: Option<f64>,
    /// Step → loss.
    pub losses: BTreeMap<u64, f64>,
    /// (step, epoch) → validation metrics.
    pub evals: BTreeMap<(u64, u64), Vec<(String, f64)>>,
    /// The trainer's final test metrics (its `done` event).
    pub test: Vec<(String, f64)>,
    /// Other trainer events, in words (resumed, stopped, ...).
    pub notes: Vec<String>,
    /// Events received from the live stream (not the history).
    pub live_events: u64,
}

/// The numeric fields of an event except `skip`, in the event's (alphabetical) order.
fn numbers(data: &Value, skip: &[&str]) -> Vec<(String, f64)> {
    data.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .filter_map(|(k, v)| v.as_f64().filter(|x| x.is_finite()).map(|x| (k.clone(), x)))
                .collect()
        })
        .unwrap_or_default()
}

/// A metric key for people: `val_macro_f1` → `val macro F1`.
pub fn metric_label(key: &str) -> String {
    key.split('_')
        .map(|w| if w == "f1" { "F1" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Watch {
    /// A fresh view of job `id`.
    pub fn new(id: &str) -> Self {
        Self {
            job: Job {
                id: id.to_string(),
                state: "connecting".into(),
                ..Job::default()
            },
            ..Self::default()
        }
    }

    /// Applies one event of the stream.
    pub fn apply(&mut self, event: &str, data: &Value) {
        self.live_events += 1;
        match event {
            "state" => {
                if let Ok(job) = serde_json::from_value::<Job>(data.clone()) {
                    if let Some(last) = &job.last_event {
                        self.step_event(last);
                    }
                    self.job = job;
                    self.has_state = true;
                }
            }
            "progress" => self.step_event(data),
            "eval" => self.eval_event(data),
            "trainer" => self.trainer_event(data),
            _ => {}
        }
    }

    /// Applies one line of the trainer's stdout (its JSON events).
    pub fn apply_log_line(&mut self, line: &str) {
        let Ok(ev) = serde_json::from_str::<Value>(line.trim()) else {
            return;
        };
        match ev["event"].as_str() {
            Some("step") => self.step_event(&ev),
            Some("eval") => self.eval_event(&ev),
            Some(_) => self.trainer_event(&ev),
            None => {}
        }
    }

    fn step_event(&mut self, data: &Value) {
        let Some(step) = data["step"].as_u64() else {
            return;
        };
        if let Some(loss) = data["loss"].as_f64().filter(|l| l.is_finite()) {
            self.losses.insert(step, loss);
        }
        if let Some(t) = data["total_steps"].as_u64() {
            self.total_steps = t;
        }
        if step >= self.step {
            self.step = step;
            self.loss = data["loss"].as_f64();
            self.eta_s = data["eta_s"].as_f64();
            self.cells_per_s = data["cells_per_s"].as_f64();
        }
    }

    fn eval_event(&mut self, data: &Value) {
        let key = (
            data["step"].as_u64().unwrap_or(0),
            data["epoch"].as_u64().unwrap_or(0),
        );
        let metrics = numbers(data, &["step", "epoch"]);
        if !metrics.is_empty() {
            self.evals.insert(key, metrics);
        }
    }

    fn trainer_event(&mut self, data: &Value) {
        let step = data["step"].as_u64().unwrap_or(0);
        let note = match data["event"].as_str().unwrap_or("") {
            "done" => {
                self.test = numbers(data, &[]);
                return;
            }
            "resume" => format!("Resumed from the checkpoint at step {step}."),
            "stopped" => format!("Stopped at step {step}; a checkpoint was saved."),
            "" => return,
            other => format!("Trainer event `{other}`."),
        };
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Fraction done (0..1): steps when known, else the job's own figure.
    pub fn fraction(&self) -> f64 {
        if self.job.state == "succeeded" {
            return 1.0;
        }
        if self.total_steps > 0 {
            (self.step as f64 / self.total_steps as f64).clamp(0.0, 1.0)
        } else {
            self.job.progress.clamp(0.0, 1.0)
        }
    }

    /// Whether the job still runs or waits (so it can be cancelled).
    pub fn cancellable(&self) -> bool {
        self.has_state
            && matches!(self.job.state.as_str(), "queued" | "running")
            && !self.job.cancel_requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(s: &str, last_step: Option<u64>) -> Value {
        json!({"id": "job_1", "kind": "finetune", "state": s, "progress": 0.25,
               "params": {"model_name": "baron-finetune"},
               "last_event": last_step.map(|n| json!({"event": "step", "step": n, "total_steps": 36, "loss": 2.0}))})
    }

    #[test]
    fn a_run_from_the_stream() {
        let mut w = Watch::new("job_1");
        assert_eq!(w.job.state, "connecting");
        assert!(!w.cancellable());
        w.apply("state", &state("queued", None));
        assert!(w.cancellable());
        assert_eq!(w.fraction(), 0.25);
        w.apply("state", &state("running", None));
        for s in 1..=3u64 {
            w.apply(
                "progress",
                &json!({"event": "step", "step": s, "total_steps": 36, "loss": 3.0 - s as f64 * 0.5,
                        "eta_s": 1.5, "cells_per_s": 500.0, "progress": s as f64 / 36.0}),
            );
        }
        assert_eq!((w.step, w.total_steps, w.loss), (3, 36, Some(1.5)));
        assert_eq!(w.losses.len(), 3);
        assert!((w.fraction() - 3.0 / 36.0).abs() < 1e-12);
        w.apply(
            "eval",
            &json!({"event": "eval", "epoch": 0, "step": 36, "val_macro_f1": 0.0528}),
        );
        assert_eq!(
            w.evals[&(36, 0)],
            vec![("val_macro_f1".to_string(), 0.0528)]
        );
        w.apply(
            "trainer",
            &json!({"event": "done", "test_accuracy": 0.411, "test_macro_f1": 0.0448,
                    "baseline_test_accuracy": 0.933, "model": "run/model"}),
        );
        assert_eq!(
            w.test,
            vec![
                ("baseline_test_accuracy".to_string(), 0.933),
                ("test_accuracy".to_string(), 0.411),
                ("test_macro_f1".to_string(), 0.0448)
            ]
        );
        w.apply("state", &state("succeeded", Some(36)));
        assert!(w.job.is_terminal() && !w.cancellable());
        assert_eq!(w.fraction(), 1.0);
        assert_eq!(w.step, 36);
        assert_eq!(w.live_events, 8);
        // Unknown events and bad data change nothing but the count.
        let before = w.clone();
        w.apply("message", &json!({"x": 1}));
        w.apply("progress", &json!({"no": "step"}));
        w.apply("state", &json!("not a job"));
        assert_eq!(w.live_events, 11);
        assert_eq!(
            Watch {
                live_events: 8,
                ..w
            },
            before
        );
    }

    #[test]
    fn history_and_stream_merge_without_duplicates() {
        let mut w = Watch::new("job_1");
        // The live stream got to step 5 before the history arrived.
        w.apply(
            "progress",
            &json!({"step": 5, "total_steps": 10, "loss": 1.0}),
        );
        let history = "{\"event\":\"step\",\"step\":1,\"total_steps\":10,\"loss\":2.0}\n\
                       {\"event\":\"step\",\"step\":2,\"total_steps\":10,\"loss\":1.8}\n\
                       {\"event\":\"stopped\",\"step\":2}\n\
                       {\"event\":\"resume\",\"step\":2}\n\
                       {\"event\":\"step\",\"step\":2,\"total_steps\":10,\"loss\":1.7}\n\
                       not json\n\
                       {\"event\":\"eval\",\"epoch\":0,\"step\":5,\"val_macro_f1\":0.1}\n";
        for line in history.lines() {
            w.apply_log_line(line);
        }
        assert_eq!(w.live_events, 1, "history lines are not live events");
        assert_eq!(
            w.losses.iter().map(|(s, l)| (*s, *l)).collect::<Vec<_>>(),
            [(1, 2.0), (2, 1.7), (5, 1.0)]
        );
        // Older history does not move the current step back.
        assert_eq!((w.step, w.loss), (5, Some(1.0)));
        assert_eq!(w.notes.len(), 2);
        assert!(w.notes[1].contains("Resumed"));
        assert_eq!(w.evals.len(), 1);
        // The same eval from the stream replaces, not repeats.
        w.apply("eval", &json!({"epoch": 0, "step": 5, "val_macro_f1": 0.1}));
        assert_eq!(w.evals.len(), 1);
    }

    #[test]
    fn metric_labels() {
        assert_eq!(metric_label("val_macro_f1"), "val macro F1");
        assert_eq!(metric_label("test_accuracy"), "test accuracy");
    }
}
