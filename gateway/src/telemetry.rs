//! Logs and traces in one place; the sink is a parameter so tests can stay quiet.
//!
//! - Log lines: text for people, or one JSON object per line for log shippers
//!   (`[telemetry] format`), filtered by `RUST_LOG` (default `info`). Every line written
//!   while a request is served carries its `request_id` (`request_trace.rs`).
//! - Spans to an OpenTelemetry collector over OTLP/HTTP (`[telemetry] otlp_endpoint`): the
//!   request, the shop call, the product actor's turn and the group commit. They are DEBUG
//!   spans: without a collector they are never even created.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::{LogFormat, TelemetrySettings};

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flushes the spans still buffered when dropped (at the end of `main`).
#[must_use = "spans still buffered are lost unless the guard lives until the end"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing spans to the collector failed: {error}");
        }
    }
}

/// Installs a global subscriber writing text to `sink`, filtered by `RUST_LOG` (default
/// `default_filter`), colored only for a terminal. Safe to call more than once: later
/// calls do nothing.
pub fn init<W>(default_filter: &str, sink: W, ansi: bool)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(default_filter))
        .with_writer(sink)
        .with_ansi(ansi)
        .try_init();
}

/// The engine's subscriber, as `[telemetry]` says: text or JSON lines to `sink`, and spans to
/// the collector if one is configured. Must run inside the tokio runtime (the exporter
/// sends with it).
pub fn init_with<W>(
    settings: &TelemetrySettings,
    sink: W,
    ansi: bool,
) -> anyhow::Result<TelemetryGuard>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let logs = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(sink)
            .with_ansi(ansi)
            .with_filter(log_filter("info"))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(sink)
            .with_filter(log_filter("info"))
            .boxed(),
    };
    let (traces, provider) = match &settings.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let provider = tracer_provider(endpoint, &settings.service_name)?;
            let tracer = provider.tracer("flashcart");
            // Every span down to DEBUG (the actor turns and commits), events from INFO up.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter_fn(|metadata| {
                    let level = *metadata.level();
                    level <= Level::INFO || (metadata.is_span() && level <= Level::DEBUG)
                }));
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|error| anyhow::anyhow!("installing the log subscriber: {error}"))?;
    Ok(TelemetryGuard { provider })
}

fn log_filter(default_filter: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter))
}

/// Batches spans and sends them as OTLP/HTTP JSON to `<endpoint>/v1/traces`.
fn tracer_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = endpoint.trim_end_matches('/');
    let traces_url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let client = OtlpHttpClient {
        client: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|error| anyhow::anyhow!("building the OTLP HTTP client: {error}"))?,
        runtime: tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the OTLP exporter needs the tokio runtime"))?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(traces_url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .build()
        .map_err(|error| anyhow::anyhow!("building the OTLP exporter: {error}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: the engine's reqwest, run on the engine's runtime.
///
/// Why not the exporter's own: it brings a second reqwest (an older major) with a blocking
/// client. The batch processor exports from its own thread, so each send is spawned onto the
/// runtime and awaited from there.
#[derive(Debug)]
struct OtlpHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let answer = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = answer.bytes().await?;
            let mut response = opentelemetry_http::Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok::<_, opentelemetry_http::HttpError>(response)
        });
        sent.await?
    }
}
