//! A small closed-loop HTTP load generator for `bench/server/run.sh`: N client threads, each
//! with its own keep-alive connection, send GET requests with a bearer token for a fixed time
//! and record every latency. Prints one JSON line: requests/s, latency percentiles, errors.
//!
//! Usage: `loadgen URL TOKEN CONCURRENCY SECONDS`

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: loadgen URL TOKEN CONCURRENCY SECONDS");
        std::process::exit(2);
    }
    let (url, token) = (args[1].clone(), args[2].clone());
    let conc: usize = args[3].parse().expect("CONCURRENCY is a number");
    let secs: f64 = args[4].parse().expect("SECONDS is a number");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let threads: Vec<_> = (0..conc)
        .map(|_| {
            let (url, token) = (url.clone(), format!("Bearer {token}"));
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut lat = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < end {
                    let t = Instant::now();
                    match agent.get(&url).header("Authorization", &token).call() {
                        Ok(mut r) if r.status().is_success() => {
                            let _ = r.body_mut().read_to_vec();
                            lat.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (l, e) = t.join().expect("client thread");
        all.extend(l);
        errors += e;
    }
    let wall = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i].as_secs_f64() * 1e3
    };
    println!(
        "{}",
        serde_json::json!({
            "url": url, "concurrency": conc, "seconds": wall, "requests": all.len(),
            "errors": errors, "req_per_s": all.len() as f64 / wall,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        })
    );
}
