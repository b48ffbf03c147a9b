//! A fine-tune stopped by SIGTERM (what the registry's cancel and Slurm's preemption send)
//! checkpoints, exits cleanly, and resumes to the end.

mod common_util;
use common_util::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn sigterm_checkpoints_and_the_run_resumes() {
    let dir = tmp("ft_sigterm");
    let run = dir.join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_genecompass-train"))
        .args([
            "finetune",
            "--data",
            BARON,
            "--label-column",
            "cell_type",
            "--output",
            run.to_str().unwrap(),
            "--config",
            "tiny",
            "--max-cells",
            "96",
            "--batch-size",
            "8",
            "--max-genes",
            "64",
            "--epochs",
            "200",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Wait for training to be under way, then ask it to stop as a scheduler would.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"event\":\"step\"") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(
        rest.iter().any(|l| l.contains("\"event\":\"stopped\"")),
        "no stopped event after SIGTERM: {rest:?}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["finished"], false);
    let stopped_at = state["step"].as_u64().unwrap();
    assert!(stopped_at >= 1);
    // 200 epochs would take long: resume with a step budget just past the stop.
    let target = (stopped_at + 3).to_string();
    let resume = train(&[
        "finetune",
        "--resume",
        run.to_str().unwrap(),
        "--max-steps",
        &target,
    ]);
    ok(resume);
    let steps: Vec<u64> = step_losses(&run).iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (1..=stopped_at + 3).collect();
    assert_eq!(steps, expected, "steps logged across the stop and resume");
}
