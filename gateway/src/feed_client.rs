//! A Rust client for the two live feeds, used by the tests and the load harness: it speaks
//! the same protocol a browser does and hands back typed values.

use actors::{StockView, TrackingView};
use engine::{OrderId, ProductId};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server sent something that is not a feed value: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the server closed the feed ({0:?})")]
    Closed(Option<CloseCode>),
    #[error("{0}")]
    Request(String),
}

/// Opens a feed with the feeds' buffer sizes (`websocket.rs`).
async fn connect(
    request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
) -> Result<Socket, FeedError> {
    let config = Some(crate::websocket::feed_client_config());
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, config, true).await?;
    Ok(socket)
}

/// `base` is the engine's HTTP address, like `http://127.0.0.1:8080`.
fn ws_base(base: &str) -> String {
    base.trim_end_matches('/').replacen("http", "ws", 1)
}

/// Live stock of a few products.
pub struct StockFeedClient {
    socket: Socket,
}

impl StockFeedClient {
    pub async fn connect(base: &str, products: &[ProductId]) -> Result<Self, FeedError> {
        let ids: Vec<String> = products.iter().map(|id| id.0.to_string()).collect();
        let url = format!("{}/ws/stock?products={}", ws_base(base), ids.join(","));
        let socket = connect(url).await?;
        Ok(Self { socket })
    }

    /// One product's feed from the node serving it, asked by cluster node `from_node`
    /// (which relays it to its own screens: `remote_feeds.rs`).
    pub async fn connect_from_node(
        base: &str,
        product: ProductId,
        from_node: &str,
    ) -> Result<Self, FeedError> {
        let url = format!("{}/ws/stock?products={product}", ws_base(base));
        let socket = connect(from_node_request(url, from_node)?).await?;
        Ok(Self { socket })
    }

    /// The next value (the snapshot first, then changes).
    pub async fn next(&mut self) -> Result<StockView, FeedError> {
        next_json(&mut self.socket).await
    }
}

/// Live tracking of one order, as its owner.
pub struct OrderFeedClient {
    socket: Socket,
}

impl OrderFeedClient {
    /// Sends the token as the first message, the way a browser does.
    pub async fn connect(base: &str, order_id: OrderId, token: &str) -> Result<Self, FeedError> {
        let url = format!("{}/ws/orders/{order_id}", ws_base(base));
        let mut socket = connect(url).await?;
        let hello = serde_json::json!({ "token": token }).to_string();
        socket.send(Message::Text(hello.into())).await?;
        Ok(Self { socket })
    }

    /// An order's tracking from the node serving it, asked by cluster node `from_node`
    /// for one of its screens (`routes/tracking.rs`), with that screen's token.
    pub async fn connect_from_node(
        base: &str,
        order_id: OrderId,
        token: &str,
        from_node: &str,
    ) -> Result<Self, FeedError> {
        let url = format!("{}/ws/orders/{order_id}", ws_base(base));
        let request = from_node_request(url, from_node)?;
        let mut socket = connect(request).await?;
        let hello = serde_json::json!({ "token": token }).to_string();
        socket.send(Message::Text(hello.into())).await?;
        Ok(Self { socket })
    }

    pub async fn next(&mut self) -> Result<TrackingView, FeedError> {
        next_json(&mut self.socket).await
    }
}

/// A feed request marked as asked by cluster node `from_node` (served there, never relayed
/// again).
fn from_node_request(
    url: String,
    from_node: &str,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, FeedError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    let from_node = from_node
        .parse()
        .map_err(|_| FeedError::Request(format!("node id {from_node:?} is not a header value")))?;
    request
        .headers_mut()
        .insert(crate::forward::FORWARDED_BY, from_node);
    Ok(request)
}

async fn next_json<T: serde::de::DeserializeOwned>(socket: &mut Socket) -> Result<T, FeedError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Close(frame))) => {
                return Err(FeedError::Closed(frame.map(|frame| frame.code)));
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
            None => return Err(FeedError::Closed(None)),
        }
    }
}
