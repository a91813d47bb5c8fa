//! A test harness for plugins: load a component, script its peers' answers, look at what it sent.

use crate::bindings::host::HttpError;
use crate::bindings::types::{HttpHeader, OutboundRequest, OutboundResponse};
use crate::outbound::{FetchOptions, OutboundHttp};
use reqwest::Url;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// An outbound-HTTP peer that answers from a script and records every request.
#[derive(Default)]
pub struct ScriptedHttp {
    answers: Mutex<VecDeque<Result<OutboundResponse, HttpError>>>,
    requests: Mutex<Vec<(Url, OutboundRequest)>>,
}

impl ScriptedHttp {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a response with a JSON body.
    pub fn respond_json(&self, status: u16, body: &serde_json::Value) {
        self.respond(OutboundResponse {
            status,
            headers: vec![HttpHeader {
                name: "content-type".into(),
                value: "application/json".into(),
            }],
            body: body.to_string().into_bytes(),
        });
    }

    pub fn respond(&self, response: OutboundResponse) {
        self.lock_answers().push_back(Ok(response));
    }

    pub fn fail(&self, error: HttpError) {
        self.lock_answers().push_back(Err(error));
    }

    /// The requests made so far, in order.
    pub fn requests(&self) -> Vec<(Url, OutboundRequest)> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock_answers(
        &self,
    ) -> std::sync::MutexGuard<'_, VecDeque<Result<OutboundResponse, HttpError>>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl OutboundHttp for ScriptedHttp {
    fn fetch(
        &self,
        url: Url,
        request: OutboundRequest,
        _options: FetchOptions,
    ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, HttpError>> + Send + '_>> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((url, request));
        let answer = self.lock_answers().pop_front().unwrap_or_else(|| {
            Err(HttpError::Unreachable(
                "the script has no more answers".into(),
            ))
        });
        Box::pin(async move { answer })
    }
}
