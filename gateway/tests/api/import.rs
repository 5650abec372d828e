//! `flashcart import-products`: a catalog file into a stopped engine's store; the engine
//! that starts on it sells, shows and finds the imported products; a bad line is named.

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{eventually, spawn_app_in};

fn import(data_dir: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flashcart"))
        .arg("import-products")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .env("FLASHCART_AUTH__JWT_SECRET", "import-test-secret")
        .output()
        .expect("the binary runs")
}

fn catalog_line(id: u64, title: &str, stock: u64) -> String {
    json!({"id": id, "title": title, "brand": "Acme", "category": format!("c{}", id % 5),
           "price": 1_000 + id, "stock": stock})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_catalog_is_sold_shown_and_found_after_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let file = dir.path().join("catalog.jsonl");
    // More than two of the import's transactions.
    let mut lines = std::fs::File::create(&file).unwrap();
    for id in 1..=12_000u64 {
        let title = if id == 11_999 {
            "Zephyrus lantern"
        } else {
            "Plain lamp"
        };
        writeln!(lines, "{}", catalog_line(id, title, 3)).unwrap();
    }
    drop(lines);
    let output = import(&data_dir, &file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("imported 12000 products (12000 new, 0 updated)"),
        "{stdout}"
    );
    // Again: the same ids update instead of adding copies.
    let output = import(&data_dir, &file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("(0 new, 12000 updated)"), "{stdout}");

    let app = spawn_app_in(&data_dir, |_| {}).await;
    let product: Value = app
        .get("/api/v1/products/11999")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(product["title"], "Zephyrus lantern");
    assert_eq!(product["price"], 12_999);
    assert_eq!(
        app.inventory(11_999).await["left"],
        3,
        "stock once, not twice"
    );
    assert_eq!(
        app.buy(7, 11_999, 2, "imported").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(app.inventory(11_999).await["left"], 1);
    eventually(Duration::from_secs(20), || async {
        let found: Value = app
            .get("/api/v1/search?q=zephyrus")
            .await
            .json()
            .await
            .unwrap();
        (found["items"][0]["id"] == 11_999).then_some(())
    })
    .await;
    app.stop().await;

    // A bad line stops the import and is named; the products before its chunk are in.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{}\n{}\n",
            catalog_line(20_001, "Fine", 1),
            catalog_line(20_002, "Fine", 1),
            json!({"id": 20_003, "title": "No price", "brand": "Acme", "category": "c", "stock": 1})
        ),
    )
    .unwrap();
    let output = import(&data_dir, &bad);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("price"), "{stderr}");
    let negative = dir.path().join("negative.jsonl");
    std::fs::write(&negative, catalog_line(0, "Zero id", 1)).unwrap();
    let output = import(&data_dir, &negative);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("id: must be at least 1"));
}
