//! `flashcart cluster ...`: the operators' commands, over the admin API of any node
//! (`routes/cluster.rs`, `routes/flash_sales.rs`) and, for `events tail`, the broker.
//! Human tables by default, the API's JSON with `--json`; a failure is one line and a
//! non-zero exit (`main.rs`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Where and as whom the commands ask.
pub struct OpsClient {
    server: String,
    token: String,
    client: reqwest::Client,
}

impl OpsClient {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        let Some(token) = token.filter(|token| !token.trim().is_empty()) else {
            bail!(
                "an admin token is needed: --token or FLASHCART_TOKEN (flashcart demo-token --role admin)"
            );
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("creating the HTTP client")?;
        Ok(Self {
            server: server.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self
            .client
            .get(format!("{}{path}", self.server))
            .bearer_auth(&self.token);
        answer(request.send().await, &self.server).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self
            .client
            .post(format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .json(body);
        answer(request.send().await, &self.server).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request.send().await, &self.server).await
    }

    pub async fn status(&self) -> anyhow::Result<Value> {
        self.get("/api/v1/cluster/status").await
    }

    pub async fn where_is(&self, product: u64) -> anyhow::Result<Value> {
        self.get(&format!("/api/v1/cluster/where?product={product}"))
            .await
    }

    pub async fn inspect(&self, product: u64) -> anyhow::Result<Value> {
        self.get(&format!("/api/v1/cluster/inspect?product={product}"))
            .await
    }

    /// Asks `node` to hand all its shards over; with `wait`, returns once the other nodes
    /// hold every one of them.
    pub async fn drain(&self, node: &str, wait: bool) -> anyhow::Result<Value> {
        let answer = self
            .post(
                "/api/v1/cluster/drain",
                &serde_json::json!({ "node": node }),
            )
            .await?;
        if !wait {
            return Ok(answer);
        }
        self.until(|status| {
            let nodes = status["nodes"].as_array()?;
            let holds = nodes
                .iter()
                .find(|entry| entry["nodeId"] == node)
                .and_then(|entry| entry["shards"].as_array())
                .is_some_and(|shards| !shards.is_empty());
            (!holds).then(|| serde_json::json!({ "node": node, "drained": true, "shardsLeft": 0 }))
        })
        .await
    }

    /// Places `shard` on `to` and waits until `to` holds its lease.
    pub async fn move_shard(&self, shard: u32, to: &str) -> anyhow::Result<Value> {
        self.post(
            "/api/v1/cluster/move",
            &serde_json::json!({ "shard": shard, "to": to }),
        )
        .await?;
        self.until(|status| {
            let nodes = status["nodes"].as_array()?;
            let holder = nodes.iter().find(|entry| {
                entry["shards"]
                    .as_array()
                    .is_some_and(|shards| shards.iter().any(|held| held == shard))
            })?;
            (holder["nodeId"] == to).then(|| serde_json::json!({ "shard": shard, "node": to }))
        })
        .await
    }

    /// Polls `status` until `done` says so (30 s at most).
    async fn until(&self, done: impl Fn(&Value) -> Option<Value>) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status().await?;
            if let Some(value) = done(&status) {
                return Ok(value);
            }
            if std::time::Instant::now() > deadline {
                bail!("not done after 30 s; see `flashcart cluster status`");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn sales(&self) -> anyhow::Result<Value> {
        self.get("/api/v1/flash-sales").await
    }

    pub async fn create_sale(&self, sale: &Value) -> anyhow::Result<Value> {
        self.post("/api/v1/flash-sales", sale).await
    }

    pub async fn move_sale(&self, sale: u64, window: &Value) -> anyhow::Result<Value> {
        let path = format!("/api/v1/flash-sales/{sale}");
        self.send(reqwest::Method::PATCH, &path, Some(window)).await
    }

    pub async fn cancel_sale(&self, sale: u64) -> anyhow::Result<Value> {
        let path = format!("/api/v1/flash-sales/{sale}");
        self.send(reqwest::Method::DELETE, &path, None).await
    }
}

/// The body of a 2xx, or the API's error as one line.
async fn answer(
    sent: Result<reqwest::Response, reqwest::Error>,
    server: &str,
) -> anyhow::Result<Value> {
    let response = sent.with_context(|| format!("no answer from {server}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{server} answered {status} without JSON"))?;
    if status.is_success() {
        return Ok(body);
    }
    let code = body["error"]["code"].as_str().unwrap_or("error");
    let message = body["error"]["message"].as_str().unwrap_or("");
    bail!("{status} {code}: {message}")
}

/// A value as a table cell.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        Value::Array(items) => shard_ranges(items),
        other => other.to_string(),
    }
}

/// `[0,1,2,3,7]` as `0-3,7`.
fn shard_ranges(items: &[Value]) -> String {
    let mut numbers: Vec<u64> = items.iter().filter_map(Value::as_u64).collect();
    numbers.sort_unstable();
    let mut text = String::new();
    let mut index = 0;
    while index < numbers.len() {
        let start = numbers[index];
        let mut end = start;
        while index + 1 < numbers.len() && numbers[index + 1] == end + 1 {
            index += 1;
            end = numbers[index];
        }
        if !text.is_empty() {
            text.push(',');
        }
        if start == end {
            let _ = write!(text, "{start}");
        } else {
            let _ = write!(text, "{start}-{end}");
        }
        index += 1;
    }
    if text.is_empty() { "-".into() } else { text }
}

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|name| name.len()).collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.len());
        }
    }
    let mut text = String::new();
    let line = |text: &mut String, cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect();
        let _ = writeln!(text, "{}", padded.join("  ").trim_end());
    };
    line(&mut text, header.to_vec());
    for row in rows {
        line(&mut text, row.iter().map(String::as_str).collect());
    }
    text
}

/// `status` for people.
pub fn status_table(status: &Value) -> String {
    let empty = Vec::new();
    let nodes = status["nodes"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            let figures = &node["figures"];
            vec![
                cell(&node["nodeId"]),
                cell(&node["address"]),
                if node["alive"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                cell(&node["shards"]),
                cell(&figures["inFlight"]),
                cell(&figures["deepestMailbox"]),
                cell(&figures["ordersPerSecond"]),
                cell(&node["seenAt"]),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "NODE",
            "ADDRESS",
            "ALIVE",
            "SHARDS",
            "IN FLIGHT",
            "DEEPEST",
            "ORDERS/S",
            "SEEN",
        ],
        &rows,
    );
    let members = status["group"]["members"]
        .as_array()
        .map(|members| members.iter().map(cell).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "\ngroup: {} (members: {})",
        cell(&status["group"]["state"]),
        if members.is_empty() {
            "-".into()
        } else {
            members
        }
    );
    let moved = status["recentlyMoved"].as_array().unwrap_or(&empty);
    if moved.is_empty() {
        let _ = writeln!(text, "no shard moved in the last minute");
    } else {
        let rows: Vec<Vec<String>> = moved
            .iter()
            .map(|entry| {
                vec![
                    cell(&entry["shard"]),
                    cell(&entry["node"]),
                    cell(&entry["epoch"]),
                    cell(&entry["takenAt"]),
                ]
            })
            .collect();
        let _ = write!(
            text,
            "\nmoved in the last minute:\n{}",
            table(&["SHARD", "NODE", "EPOCH", "TAKEN"], &rows)
        );
    }
    text
}

/// A flat object as `key  value` lines (`where`, `inspect`, a created sale).
pub fn fields_table(value: &Value) -> String {
    let Some(object) = value.as_object() else {
        return format!("{value}\n");
    };
    let rows: Vec<Vec<String>> = object
        .iter()
        .map(|(key, value)| {
            let shown = match value {
                Value::Object(_) => value.to_string(),
                other => cell(other),
            };
            vec![key.clone(), shown]
        })
        .collect();
    table(&["FIELD", "VALUE"], &rows)
}

/// `sales list` for people.
pub fn sales_table(sales: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = sales
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|sale| {
            vec![
                cell(&sale["id"]),
                cell(&sale["productId"]),
                cell(&sale["title"]),
                cell(&sale["salePrice"]),
                cell(&sale["stock"]),
                cell(&sale["perUserLimit"]),
                cell(&sale["startTime"]),
                cell(&sale["endTime"]),
            ]
        })
        .collect();
    table(
        &[
            "SALE", "PRODUCT", "TITLE", "PRICE", "STOCK", "PER USER", "STARTS", "ENDS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shards_read_as_ranges() {
        assert_eq!(
            shard_ranges(&[json!(3), json!(0), json!(1), json!(2), json!(7)]),
            "0-3,7"
        );
        assert_eq!(shard_ranges(&[]), "-");
    }

    #[test]
    fn a_status_reads_as_a_table() {
        let status = json!({
            "answeredBy": "n1",
            "group": {"state": "Stable", "members": ["n1", "n2"]},
            "nodes": [
                {"nodeId": "n1", "address": "127.0.0.1:7101", "alive": true,
                 "seenAt": "2026-12-02T06:00:00.000Z", "shards": [0, 1, 2, 3],
                 "figures": {"inFlight": 3, "deepestMailbox": 2, "ordersPerSecond": 12.5}},
                {"nodeId": "n2", "address": "127.0.0.1:7102", "alive": false,
                 "seenAt": "2026-12-02T05:59:00.000Z", "shards": [], "figures": null}
            ],
            "recentlyMoved": []
        });
        let text = status_table(&status);
        assert!(text.contains("n1    127.0.0.1:7101  yes    0-3"), "{text}");
        assert!(text.contains("n2    127.0.0.1:7102  no     -"), "{text}");
        assert!(text.contains("group: Stable (members: n1, n2)"), "{text}");
    }
}
