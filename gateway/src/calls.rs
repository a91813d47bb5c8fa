//! A job's call through a connection's plugin: the connection it acts through, its plugin
//! version and the call's context (secrets opened), and how a failed call counts for the job
//! queue. Shared by every stage whose jobs call plugins (dispatch, fulfilment, tracking,
//! after-sales), below all of them.

use crate::plugins::{Installed, LoadError};
use crate::services::Services;
use crate::store::connections::Connection;
use crate::store::jobs::Outcome;
use daifa_plugin_host::{CallFailure, ConnectionContext};
use std::sync::Arc;

tokio::task_local! {
    /// The plugin version the current attempt called, recorded with the attempt: set by
    /// [`callee`], so that no job kind has to pass it along.
    pub(crate) static ATTEMPT_PLUGIN_VERSION: std::cell::RefCell<Option<String>>;
}

/// How a failed plugin call counts for the queue.
pub fn outcome_of(failure: CallFailure) -> Outcome {
    let kind = failure.error.kind().to_string();
    let error = failure.error.to_string();
    // Refusals (permanent, bad payload, unsupported, an input or answer over its limit) are
    // not retried: another attempt gets the same answer.
    if failure.error.is_retryable() {
        Outcome::Failed {
            kind,
            error,
            retry_after: failure.retry_after,
        }
    } else {
        Outcome::Refused { kind, error }
    }
}

/// The connection a job acts through, its plugin and the call context (secrets opened), or the
/// outcome when one of them is missing (retried: the operator may install or fix it).
pub(crate) async fn callee(
    state: &Services,
    connection_id: &str,
) -> anyhow::Result<Result<(Connection, Arc<Installed>, Arc<ConnectionContext>), Outcome>> {
    let connection = state
        .connection_cache
        .by_id(&state.db, connection_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("connection {connection_id} is missing"))?;
    let plugin = match state
        .plugins
        .get(&connection.plugin, &connection.plugin_version)
        .await
    {
        Ok(plugin) => plugin,
        Err(LoadError::Internal(e)) => return Err(e),
        Err(e) => {
            return Ok(Err(Outcome::Failed {
                kind: "plugin-missing".into(),
                error: e.to_string(),
                retry_after: None,
            }));
        }
    };
    let _ = ATTEMPT_PLUGIN_VERSION.try_with(|v| {
        *v.borrow_mut() = Some(plugin.version().to_string());
    });
    match connection.context(&state.secrets, &plugin) {
        Ok(ctx) => Ok(Ok((connection, plugin, Arc::new(ctx)))),
        Err(e) => Ok(Err(Outcome::Failed {
            kind: "secret".into(),
            error: e.to_string(),
            retry_after: None,
        })),
    }
}
