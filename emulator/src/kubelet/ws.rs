//! Server side of the WebSocket upgrade, done by hand with hyper's upgrade (axum's `ws` feature
//! would pull a second tungstenite), and the Kubernetes channel framing.

use axum::body::Body;
use axum::extract::Request;
use http::{HeaderValue, Response, StatusCode, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The WebSocket after the upgrade.
pub type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Channel byte a v5 client sends (followed by a channel number) to close that channel.
pub const CLOSE_CHANNEL: u8 = 255;

/// A WebSocket upgrade request that was accepted.
pub struct Accepted {
    /// The response to return (101 Switching Protocols).
    pub response: Response<Body>,
    /// The chosen subprotocol.
    pub protocol: String,
    /// Resolves to the upgraded connection once the 101 has been sent.
    pub on_upgrade: OnUpgrade,
}

/// Why an upgrade request was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The request asks for SPDY (or nothing): only WebSockets are served.
    #[error(
        "this emulator serves {what} only over WebSocket (subprotocols {offered}); the request asked for {asked} (SPDY is not supported)"
    )]
    NotWebSocket {
        /// exec, attach or portforward.
        what: &'static str,
        /// Subprotocols we accept.
        offered: String,
        /// What the client asked for.
        asked: String,
    },
    /// No common subprotocol.
    #[error(
        "this emulator serves {what} only over WebSocket with the channel protocol [{offered}]; the client offered [{asked}] (SPDY, also tunnelled in a WebSocket as kubectl port-forward does, is not supported)"
    )]
    NoProtocol {
        /// exec, attach or portforward.
        what: &'static str,
        /// Subprotocols we accept.
        offered: String,
        /// What the client asked for.
        asked: String,
    },
}

fn header_has(req: &Request, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Accept a WebSocket upgrade, choosing the first of `supported` (server preference order) that
/// the client offers.
pub fn accept(
    req: &mut Request,
    what: &'static str,
    supported: &[&str],
) -> Result<Accepted, UpgradeError> {
    let asked: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(',').map(|t| t.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_ws = header_has(req, header::UPGRADE, "websocket")
        && header_has(req, header::CONNECTION, "upgrade");
    let key = match key {
        Some(k) if is_ws => k,
        _ => {
            let upgrade = req
                .headers()
                .get(header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no upgrade")
                .to_string();
            return Err(UpgradeError::NotWebSocket {
                what,
                offered: supported.join(", "),
                asked: upgrade,
            });
        }
    };
    let Some(protocol) = supported
        .iter()
        .find(|s| asked.iter().any(|a| a == *s))
        .map(|s| s.to_string())
    else {
        return Err(UpgradeError::NoProtocol {
            what,
            offered: supported.join(", "),
            asked: asked.join(", "),
        });
    };
    let on_upgrade = hyper::upgrade::on(req);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Ok(v) = HeaderValue::from_str(&protocol) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    Ok(Accepted {
        response,
        protocol,
        on_upgrade,
    })
}

/// Wait for the upgrade and wrap the connection as a server-side WebSocket.
pub async fn upgraded(on_upgrade: OnUpgrade) -> Result<Ws, hyper::Error> {
    let upgraded = on_upgrade.await?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await)
}

/// A binary message on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> tokio_tungstenite::tungstenite::Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    tokio_tungstenite::tungstenite::Message::binary(v)
}

/// A normal-closure (1000) close message: Go clients (gorilla/websocket in kubectl) treat a close
/// without a status code (1005) as an error.
pub fn normal_close() -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    tokio_tungstenite::tungstenite::Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}
