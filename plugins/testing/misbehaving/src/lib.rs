//! A channel plugin that misbehaves on request, to test the host's limits.
//!
//! `handle-inbound` does what the request body says:
//!
//! | body | behaviour |
//! |---|---|
//! | `loop` | spins forever |
//! | `recurse` | recurses without bound until the stack overflows |
//! | `alloc` | allocates until its memory runs out |
//! | `panic` | panics |
//! | `huge` | returns an `inbound` whose topic is a 50 MB string |
//! | `fetch:<url>` | GETs `url` through the host; the topic is `status:<code>` |
//! | `fetch-fail:<url>` | the same, but a status other than 2xx is returned as the plugin error the SDK maps it to (503: `transient`) |
//! | anything else | returns the body as the topic |
//!
//! `push-fulfillment` always fails with `transient("always")`. `poll` does what the connection's
//! `poll` setting says, the same way; otherwise it finds nothing and moves the cursor on by one.
//! `refund` and `cancel-order` do what the `refund` and `cancel` settings say; an echo is the
//! refund's id, the cancellation's reference.
//!
//! Built by `plugins/bundled` into `TEST_PLUGINS`, which the gateway never loads.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::channel::{
    CancelOrderRef, CancelOrderRequest, ChannelPlugin, FulfillmentRef, FulfillmentRequest, Inbound,
    PollResult, RefundRef, RefundRequest, ReturnDecision,
};
use daifa_plugin_sdk::types::{InboundRequest, PollRequest};
use daifa_plugin_sdk::{connection, http};

/// The length of the topic `huge` returns.
pub const HUGE_TOPIC_BYTES: usize = 50 * 1024 * 1024;

/// What a request body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    Loop,
    Recurse,
    Alloc,
    Panic,
    Huge,
    Fetch(&'a str),
    FetchFail(&'a str),
    /// Answers how many calls this instance has served: shows whether instances are reused.
    Count,
    Echo(&'a str),
}

impl<'a> Action<'a> {
    pub fn parse(body: &'a str) -> Self {
        match body {
            "loop" => Self::Loop,
            "recurse" => Self::Recurse,
            "alloc" => Self::Alloc,
            "panic" => Self::Panic,
            "huge" => Self::Huge,
            "count" => Self::Count,
            _ => {
                if let Some(url) = body.strip_prefix("fetch:") {
                    Self::Fetch(url)
                } else if let Some(url) = body.strip_prefix("fetch-fail:") {
                    Self::FetchFail(url)
                } else {
                    Self::Echo(body)
                }
            }
        }
    }
}

/// The component.
pub struct Misbehaving;

impl ChannelPlugin for Misbehaving {
    fn handle_inbound(request: InboundRequest) -> Result<Inbound, PluginError> {
        let topic = act(&String::from_utf8_lossy(&request.body))?;
        Ok(Inbound {
            delivery_id: None,
            topic: Some(topic),
            events: Vec::new(),
        })
    }

    fn push_fulfillment(_request: FulfillmentRequest) -> Result<FulfillmentRef, PluginError> {
        Err(PluginError::transient("always"))
    }

    fn check_connection() -> Result<String, PluginError> {
        Ok("misbehaving, as asked".into())
    }

    /// Does what the connection's `poll` setting says (an action as for `handle-inbound`); an
    /// echo finds nothing and moves the cursor on by one (`"1"`, `"2"`...).
    /// Refunds answer what the connection's `refund` setting says (an action as for
    /// `handle-inbound`); an echo is a refund with that id.
    fn refund(_request: RefundRequest) -> Result<RefundRef, PluginError> {
        let action = connection::setting("refund").unwrap_or_default();
        Ok(RefundRef {
            external_id: act(&action)?,
        })
    }

    fn decide_return(_decision: ReturnDecision) -> Result<(), PluginError> {
        Err(PluginError::unsupported(
            "misbehaving has no return requests",
        ))
    }

    /// Cancellations answer what the connection's `cancel` setting says (an action as for
    /// `handle-inbound`); an echo is a cancellation with that reference.
    fn cancel_order(_request: CancelOrderRequest) -> Result<CancelOrderRef, PluginError> {
        let action = connection::setting("cancel").unwrap_or_default();
        Ok(CancelOrderRef {
            reference: Some(act(&action)?),
            already_cancelled: false,
        })
    }

    fn poll(request: PollRequest) -> Result<PollResult, PluginError> {
        let action = connection::setting("poll").unwrap_or_default();
        act(&action)?;
        let previous: u64 = request
            .cursor
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(PollResult {
            events: Vec::new(),
            next_cursor: Some((previous + 1).to_string()),
            more: false,
            skipped: Vec::new(),
        })
    }
}

/// Does what `body` asks ([`Action`]); the answer is the text `handle-inbound` returns as topic.
fn act(body: &str) -> Result<String, PluginError> {
    Ok(match Action::parse(body) {
        Action::Loop => spin(),
        Action::Recurse => recurse(0).to_string(),
        Action::Alloc => exhaust_memory(),
        Action::Panic => panic!("misbehaving plugin panics on request"),
        Action::Huge => "x".repeat(black_box(HUGE_TOPIC_BYTES)),
        Action::Fetch(url) => {
            // `send` maps the host's refusals: not allowed and invalid are `permanent`,
            // unreachable is `transient`.
            let response = http::Request::get(url).send()?;
            format!("status:{}", response.status)
        }
        Action::FetchFail(url) => {
            let response = http::Request::get(url).send_ok()?;
            format!("status:{}", response.status)
        }
        Action::Count => {
            static CALLS: AtomicU64 = AtomicU64::new(0);
            (CALLS.fetch_add(1, Ordering::Relaxed) + 1).to_string()
        }
        Action::Echo(text) => text.to_string(),
    })
}

/// Never returns; `black_box` keeps the optimizer from proving the loop has no effect.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Recurses until the stack overflows. The frame holds an array the optimizer must keep (so each
/// level really uses stack), and the addition after the call keeps it from being a tail call. The
/// condition is never true but cannot be proven so, which keeps rustc from refusing a function
/// that cannot return.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(black_box(depth + 1)).wrapping_add(frame[31])
}

/// Allocates 1 MiB chunks, touching each, until the allocator cannot grow memory any more (the
/// host's memory cap), at which point Rust's allocation-failure handler aborts.
fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[black_box(0)] = 1;
        hoard.push(black_box(chunk));
    }
}

// Only the wasm build exports the component: its export names are not valid symbol names for a
// native linker, and the native `cdylib` of `cargo test` needs none.
#[cfg(target_arch = "wasm32")]
daifa_plugin_sdk::channel::export_channel_plugin!(Misbehaving);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_actions() {
        assert_eq!(Action::parse("loop"), Action::Loop);
        assert_eq!(Action::parse("recurse"), Action::Recurse);
        assert_eq!(Action::parse("alloc"), Action::Alloc);
        assert_eq!(Action::parse("panic"), Action::Panic);
        assert_eq!(Action::parse("huge"), Action::Huge);
        assert_eq!(Action::parse("count"), Action::Count);
        assert_eq!(
            Action::parse("fetch:https://peer.test/x"),
            Action::Fetch("https://peer.test/x")
        );
        assert_eq!(
            Action::parse("fetch-fail:https://peer.test/x"),
            Action::FetchFail("https://peer.test/x")
        );
        assert_eq!(Action::parse("loop "), Action::Echo("loop "));
        assert_eq!(Action::parse(""), Action::Echo(""));
    }
}
