//! What this node asks of the others (`actors/src/node_channel.rs`), over HTTP to their
//! internal listeners (served by `routes/internal.rs`): "hold these lines of an order"
//! and "what does this product cost" go to whichever node serves the shard, as any
//! forwarded request does (re-routed while a shard moves); "this is how the order ended"
//! goes to the node that held its lines.

use std::sync::Arc;

use actors::{HoldReply, HoldRequest, HoldSettlement, NodeChannel, Offer, PeerAnswer, Shop};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use engine::ProductId;

use crate::forward::Forwarder;

pub const HOLDS_PATH: &str = "/internal/v1/holds";
pub const SETTLEMENTS_PATH: &str = "/internal/v1/holds/settlements";
pub const OFFERS_PATH: &str = "/internal/v1/offers/{product_id}";

pub struct HttpNodeChannel {
    forwarder: Arc<Forwarder>,
    shop: Shop,
}

impl HttpNodeChannel {
    pub fn new(forwarder: Arc<Forwarder>, shop: Shop) -> Self {
        Self { forwarder, shop }
    }

    /// Sends to the node serving `shard` (re-routed while it moves): the answer and the
    /// address it came from, or why there is none.
    async fn send_to_shard(
        &self,
        shard: u32,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<(String, reqwest::Response), String> {
        let shop = &self.shop;
        let sent = self
            .forwarder
            .send(
                shard,
                || shop.serves_shard(shard),
                method,
                path,
                headers,
                body.into(),
            )
            .await
            .map_err(|error| error.to_string())?;
        // The caller saw the shard elsewhere a moment ago; asking again settles it.
        sent.ok_or_else(|| format!("shard {shard} came to this node meanwhile; retry"))
    }
}

#[async_trait::async_trait]
impl NodeChannel for HttpNodeChannel {
    async fn hold(&self, request: HoldRequest) -> PeerAnswer {
        let body = match serde_json::to_vec(&request) {
            Ok(body) => body,
            Err(error) => return PeerAnswer::Unavailable(error.to_string()),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let shard = request.shard;
        let (peer, answer) = match self
            .send_to_shard(shard, Method::POST, HOLDS_PATH, &headers, body)
            .await
        {
            Ok(sent) => sent,
            Err(why) => return PeerAnswer::Unavailable(why),
        };
        if answer.status() != StatusCode::OK {
            return PeerAnswer::Unavailable(format!(
                "node {peer} answered {} to holding lines of shard {shard}",
                answer.status()
            ));
        }
        match answer.json::<HoldReply>().await {
            Ok(reply) => PeerAnswer::Held { peer, reply },
            // Whatever it held, it resolves at its deadline.
            Err(error) => PeerAnswer::Unavailable(format!("node {peer}'s answer: {error}")),
        }
    }

    async fn settle(&self, peer: &str, settlement: &HoldSettlement) -> Result<(), String> {
        let status = self
            .forwarder
            .post_json(peer, SETTLEMENTS_PATH, settlement)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("node {peer} answered {status}"))
        }
    }

    async fn offer(&self, shard: u32, product_id: ProductId) -> Result<Option<Offer>, String> {
        let path = OFFERS_PATH.replace("{product_id}", &product_id.to_string());
        let (peer, answer) = self
            .send_to_shard(shard, Method::GET, &path, &HeaderMap::new(), Vec::new())
            .await?;
        match answer.status() {
            StatusCode::OK => answer
                .json::<Offer>()
                .await
                .map(Some)
                .map_err(|error| format!("node {peer}'s offer: {error}")),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(format!(
                "node {peer} answered {status} for product {product_id}"
            )),
        }
    }
}
