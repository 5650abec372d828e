//! The harness itself, in a few seconds, so it cannot rot: the real engine (embedded
//! store) and the `flashcart-load` binary for each scenario, which must verify its run.

use std::process::Command;

use gateway::App;
use gateway::settings::Settings;
use secrecy::SecretString;

async fn start_engine(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.store.data_dir = dir.to_path_buf();
    settings.auth.jwt_secret = Some(SecretString::from("smoke-secret".to_owned()));
    // Thousands of simulated shoppers share 127.0.0.1: one address's bucket would shed them.
    settings.rate_limits.enabled = false;
    let app = App::build(&settings).await.expect("engine starts");
    let host = format!("http://{}", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (host, stop)
}

fn run_harness(host: &str, dir: &std::path::Path, scenario: &str) -> String {
    let database = format!("sqlite://{}", dir.join("flashcart.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_flashcart-load"))
        .args([
            "--host",
            host,
            "--jwt-secret",
            "smoke-secret",
            "--scenario",
            scenario,
        ])
        .args(["--products", "20", "--hot-share", "0.5", "--shoppers", "50"])
        .args([
            "--users",
            "4",
            "--increase-rate",
            "4",
            "--run-time",
            "2s",
            "--quiet",
        ])
        .args(["--verify-database-url", &database])
        .arg("--report-file")
        .arg(dir.join(format!("{scenario}.json")))
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{scenario} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, stop) = start_engine(dir.path()).await;
    let host_for_runs = host.clone();
    let path = dir.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        ["flash-sale", "browse", "mixed", "watchers"]
            .map(|scenario| run_harness(&host_for_runs, &path, scenario))
    })
    .await
    .expect("harness runs");
    let flash_sale = &outputs[0];
    assert!(flash_sale.contains("VERIFY OK"), "{flash_sale}");
    assert!(
        flash_sale.contains("latency of placed orders, ms: p50"),
        "{flash_sale}"
    );
    let placed: u64 = flash_sale
        .lines()
        .find_map(|line| line.strip_prefix("buy-now: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .expect("a buy-now summary line");
    assert!(placed > 0, "the flash sale placed orders: {flash_sale}");
    assert!(outputs[2].contains("VERIFY OK"), "{}", outputs[2]);
    assert!(
        outputs[2].contains("checkout: "),
        "the mixed scenario checked carts out: {}",
        outputs[2]
    );
    assert!(outputs[3].contains("VERIFY OK"), "{}", outputs[3]);
    assert!(
        outputs[3].contains("watchers: "),
        "screens received stock messages: {}",
        outputs[3]
    );
    assert!(
        dir.path().join("flash-sale.json").exists(),
        "goose wrote its report"
    );
    let _ = stop.send(());
}
