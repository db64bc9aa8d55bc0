//! An AWS endpoint that answers with scripted responses, for what moto cannot show:
//! failed resources and their reasons, rollbacks, a stack stuck in progress, throttling.
//! The deployer runs unchanged against it through `AWS_ENDPOINT_URL`; the AWS SDK parses
//! the hand-written bodies exactly as it parses AWS's, so a body that drifts from AWS's
//! wire format fails the test instead of passing silently.
//!
//! Replies are matched by API action (and optionally by text in the request) and
//! served in order; the last matching one repeats, so polling loops end on it. A call nobody scripted gets a 400 naming it,
//! which the deployer reports, so the test sees which call it did not expect.

pub mod cloudformation;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::HarnessError;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub action: String,
    /// Text the request body must contain for this reply (e.g. `StackName=NAME`), to
    /// tell apart calls of one action about different things.
    pub when: Option<String>,
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra response headers (Lambda reports a function's error in one).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// An XML answer (the query protocol: CloudFormation, STS).
    pub fn xml(action: &str, status: u16, body: String) -> Reply {
        Reply {
            action: action.to_string(),
            when: None,
            status,
            content_type: "text/xml",
            body,
            headers: Vec::new(),
        }
    }

    /// A JSON answer (the JSON protocols: ECR, SSM, ECS).
    pub fn json(action: &str, status: u16, body: serde_json::Value) -> Reply {
        Reply {
            action: action.to_string(),
            when: None,
            status,
            content_type: "application/x-amz-json-1.1",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// A REST call (S3), matched by HTTP method: `HEAD`, `PUT`, ….
    pub fn rest(method: &str, status: u16) -> Reply {
        Reply {
            action: method.to_string(),
            when: None,
            status,
            content_type: "application/xml",
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// A REST call answered with JSON (EFS).
    pub fn rest_json(method: &str, status: u16, body: serde_json::Value) -> Reply {
        Reply {
            action: method.to_string(),
            when: None,
            status,
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// With a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Only for requests whose body contains `text`.
    pub fn when(mut self, text: &str) -> Reply {
        self.when = Some(text.to_string());
        self
    }
}

/// A request the endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    pub action: String,
    /// The form parameters (query protocol) or the JSON body, as text.
    pub body: String,
}

#[derive(Debug, Default)]
struct Script {
    replies: Vec<Reply>,
    received: Vec<Received>,
}

impl Script {
    /// The first scripted reply for this request; consumed unless it is the last one
    /// that matches (which then answers every later request alike).
    fn take(&mut self, action: &str, body: &str) -> Option<Reply> {
        let matches =
            |r: &Reply| r.action == action && r.when.as_deref().is_none_or(|w| body.contains(w));
        let first = self.replies.iter().position(matches)?;
        let more = self.replies[first + 1..].iter().any(matches);
        Some(if more {
            self.replies.remove(first)
        } else {
            self.replies[first].clone()
        })
    }
}

/// The endpoint, serving on a free loopback port from its own thread until dropped (the
/// tests that use it are synchronous: they run the deployer binary and wait).
#[derive(Debug)]
pub struct AwsReplay {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(m: &Mutex<Script>) -> std::sync::MutexGuard<'_, Script> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AwsReplay {
    pub fn start(replies: impl IntoIterator<Item = Reply>) -> Result<AwsReplay, HarnessError> {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into_iter().collect(),
            received: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(crate::io("binding the replay endpoint"))?;
        listener
            .set_nonblocking(true)
            .map_err(crate::io("configuring the replay endpoint"))?;
        let addr = listener
            .local_addr()
            .map_err(crate::io("reading the replay endpoint's address"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(crate::io("starting the replay endpoint's runtime"))?;
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(answer).with_state(script.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        Ok(AwsReplay {
            addr,
            script,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// For `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.script).received.clone()
    }

    /// The actions called so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.action).collect()
    }

    /// The environment a deployer run needs to reach this endpoint with dummy
    /// credentials (nothing here checks signatures).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_SESSION_TOKEN", "testing".into()),
            // Keep SDK retries short and few: scripted throttling is answered at once.
            ("AWS_MAX_ATTEMPTS", "3".into()),
        ]
    }
}

impl Drop for AwsReplay {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The action of a request: `Action=` of a query-protocol form, the operation in
/// `X-Amz-Target` (`Service_Version.Operation`) of a JSON-protocol call, else the HTTP
/// method (REST: S3).
fn action_of(method: &Method, headers: &HeaderMap, body: &str) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map_or_else(|| method.as_str().to_string(), str::to_string)
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let action = action_of(&method, &headers, &body);
    let reply = {
        let mut script = lock(&script);
        let reply = script.take(&action, &body);
        script.received.push(Received {
            action: action.clone(),
            body,
        });
        reply
    };
    match reply {
        Some(reply) => {
            let mut response = (
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [("content-type", reply.content_type)],
                reply.body,
            )
                .into_response();
            for (name, value) in &reply.headers {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    axum::http::HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(n, v);
                }
            }
            response
        }
        None => (
            StatusCode::BAD_REQUEST,
            [("content-type", "text/xml")],
            cloudformation::error(
                "UnscriptedCall",
                &format!("the test did not script a reply to {action:?}"),
            ),
        )
            .into_response(),
    }
}
