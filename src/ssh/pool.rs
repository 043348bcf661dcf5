//! Fleet-wide connection setup with bounded concurrency.

use super::{Connection, Endpoint, SshError};
use futures::stream::{self, StreamExt};
use std::sync::Arc;

/// Connect to every endpoint, at most `concurrency` handshakes at a time. Results keep the
/// input order; one host's failure never stops the others.
pub async fn connect_all(endpoints: &[Endpoint], concurrency: usize) -> Vec<Result<Arc<Connection>, SshError>> {
    stream::iter(endpoints.iter())
        .map(|ep| async move { Connection::open(ep).await.map(Arc::new) })
        .buffered(concurrency.max(1))
        .collect()
        .await
}
