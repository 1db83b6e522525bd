//! Optional ingestion from a NATS subject: each message is one event or a JSON array, validated
//! exactly like a POST body. A message with a reply subject gets the stored events (or the
//! error) back only after they are committed, so a request/reply publisher has an acknowledgement.

use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;

use crate::event::parse_body;
use crate::http::{store_events, AppState};

/// Queue group shared by every collector replica.
pub const QUEUE_GROUP: &str = "collector";

/// Why NATS ingestion could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached.
    #[error("nats connect: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// The subscription was refused.
    #[error("nats subscribe: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
}

/// A running subscription; `run` consumes messages until shutdown is signalled.
pub struct Ingest {
    client: async_nats::Client,
    sub: async_nats::Subscriber,
    subject: String,
}

impl Ingest {
    /// Connects and subscribes, so a bad NATS_URL fails at start rather than later.
    ///
    /// All replicas join one queue group, so each message is stored once, by one of them,
    /// however many replicas run.
    pub async fn connect(url: &str, subject: &str) -> Result<Self, Error> {
        let client = async_nats::connect(url).await?;
        let sub = client
            .queue_subscribe(subject.to_string(), QUEUE_GROUP.to_string())
            .await?;
        Ok(Self {
            client,
            sub,
            subject: subject.to_string(),
        })
    }

    /// Stores messages until `stop` turns true, then unsubscribes and flushes pending replies.
    pub async fn run(mut self, state: AppState, mut stop: watch::Receiver<bool>) {
        tracing::info!(subject = %self.subject, "ingesting from nats");
        loop {
            let msg = tokio::select! {
                msg = self.sub.next() => msg,
                _ = stop.wait_for(|s| *s) => break,
            };
            let Some(msg) = msg else { break };
            let reply = match parse_body(&msg.payload, state.max_batch_size, chrono::Utc::now()) {
                Ok(incoming) => match store_events(&state, incoming.into_events()).await {
                    Ok(stored) => json!(stored),
                    Err(e) => {
                        state.metrics.record_error();
                        tracing::error!(error = %e, "storing nats events failed");
                        json!({ "error": "storage unavailable" })
                    }
                },
                Err(e) => {
                    state.metrics.record_error();
                    tracing::warn!(error = %e, "invalid nats message");
                    json!({ "error": e.to_string(), "field": e.field() })
                }
            };
            if let Some(subject) = msg.reply {
                if let Err(e) = self.client.publish(subject, reply.to_string().into()).await {
                    tracing::warn!(error = %e, "nats reply failed");
                }
            }
        }
        let _ = self.sub.unsubscribe().await;
        let _ = self.client.flush().await;
    }
}
