//! The page at `/` in a real headless Chromium (Debian's, driven through chromedriver): it
//! shows a sale product's stock, Buy Now is clicked, and the number drops. A screenshot is
//! kept in `target/browser/`. `deploy/browser.sh` installs Chromium when missing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use gateway::App;
use gateway::settings::Settings;
use secrecy::SecretString;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sale_board_shows_stock_and_a_click_buys() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.store.data_dir = dir.path().to_path_buf();
    settings.auth.jwt_secret = Some(SecretString::from("browser-secret".to_owned()));
    settings.demo = true;
    let app = App::build(&settings).await.expect("demo app starts");
    let url = format!("http://{}/", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let driver_port = free_port();
    let _driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (deploy/browser.sh installs it)"),
    );
    let profile = tempfile::tempdir().unwrap();
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,900", format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let webdriver = format!("http://127.0.0.1:{driver_port}");
    let client = poll("chromedriver", || {
        let capabilities = capabilities.clone();
        let webdriver = webdriver.clone();
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&webdriver)
                .await
                .ok()
        }
    })
    .await;

    client.goto(&url).await.expect("page loads");
    let left_before: u64 = poll("the stock number", || async {
        let text = client
            .find(Locator::Css(".sale .left"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.trim().parse().ok()
    })
    .await;
    assert_eq!(left_before, 100, "the demo sale starts with 100 units");

    client
        .find(Locator::Css(".sale .buy"))
        .await
        .expect("a Buy Now button")
        .click()
        .await
        .expect("click");
    let left_after: u64 = poll("the number to drop", || async {
        let text = client
            .find(Locator::Css(".sale .left"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let left: u64 = text.trim().parse().ok()?;
        (left < left_before).then_some(left)
    })
    .await;
    assert_eq!(left_after, left_before - 1);
    let result = client
        .find(Locator::Css(".sale .result.ok"))
        .await
        .expect("a success line");
    assert!(result.text().await.unwrap().contains("Reserved"));

    // The demo's second sale has not started: its card offers "Notify me", which puts the
    // product on the shopper's wishlist (the product's page then counts one wisher).
    let coming = gateway::demo::COMING_SALE_PRODUCT.0;
    let card = format!(".sale[data-product-id='{coming}']");
    let buy = client
        .find(Locator::Css(&format!("{card} .buy")))
        .await
        .expect("the coming sale's card");
    assert!(
        !buy.is_enabled().await.unwrap(),
        "no buying before the start"
    );
    client
        .find(Locator::Css(&format!("{card} .notify")))
        .await
        .expect("a Notify me button")
        .click()
        .await
        .expect("click");
    let told = poll("the wishlist answer", || async {
        let text = client
            .find(Locator::Css(&format!("{card} .result.ok")))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert!(told.contains("wishlist"), "{told}");
    let product: serde_json::Value = reqwest::get(format!("{url}api/v1/products/{coming}"))
        .await
        .expect("product")
        .json()
        .await
        .expect("json");
    assert_eq!(product["wishlistCount"], 1, "{product}");

    let screenshot = client.screenshot().await.expect("screenshot");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("flash-sale.png"), screenshot).unwrap();
    client.close().await.expect("browser closes");
    let _ = stop.send(());
}
