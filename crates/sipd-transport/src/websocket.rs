//! WS and WSS connections (RFC 7118): the `sip` subprotocol is required, each WebSocket
//! message carries one SIP message, and replies use the frame type the peer last used.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::config::Limits;
use crate::connection::{CloseReason, Connection, Outbound};
use crate::counters::{bump, TransportCounters};

const SUBPROTOCOL: &str = "sip";

/// Read buffer of a connection, allocated up front: small, as SIP messages are, so that many
/// idle connections cost little (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4 * 1024;
/// Messages gathered before writing (a flush writes whatever is gathered).
const WRITE_BUFFER: usize = 16 * 1024;

pub(crate) fn config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(limits.max_message_size))
        .max_frame_size(Some(limits.websocket_max_frame_size))
}

/// The upgrade check: the client must offer the `sip` subprotocol, which the answer selects.
// The error type is fixed by tungstenite's `Callback`.
#[allow(clippy::result_large_err)]
pub(crate) fn negotiate_sip(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    let offers_sip = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case(SUBPROTOCOL));
    if !offers_sip {
        let mut refusal = ErrorResponse::new(Some(
            "the WebSocket subprotocol \"sip\" (RFC 7118) is required\n".to_owned(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

/// Runs the connection until it ends, then closes it in order.
pub(crate) async fn serve<S>(
    connection: Connection,
    mut queue: mpsc::Receiver<Outbound>,
    socket: WebSocketStream<S>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    let binary = AtomicBool::new(false);
    let reason = tokio::select! {
        reason = read(&connection, &mut stream, &binary) => reason,
        reason = write(&connection, &mut sink, &mut queue, &binary) => reason,
    };
    let shared = connection.shared.clone();
    let transport = connection.transport;
    let binary = binary.load(Ordering::Relaxed);
    let finish = |pending: Vec<Outbound>| async move {
        let counters = shared.counters.of(transport);
        for item in pending {
            if let Some(message) = frame(counters, item, binary) {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
        }
        // Sends a close frame (or answers the peer's) and flushes.
        let _ = sink.close().await;
    };
    connection.close(reason, queue, finish).await;
}

async fn read<S>(
    connection: &Connection,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    binary: &AtomicBool,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = &connection.shared;
    let counters = shared.counters.of(connection.transport);
    let idle = connection.idle_expired();
    tokio::pin!(idle);
    loop {
        let next = tokio::select! {
            biased;
            () = shared.closing.cancelled() => return CloseReason::Shutdown,
            () = &mut idle => return CloseReason::Idle,
            next = stream.next() => next,
        };
        let message = match next {
            None | Some(Ok(Message::Close(_))) => return CloseReason::PeerClosed,
            Some(Err(error)) => return classify(counters, error),
            Some(Ok(message)) => message,
        };
        connection.activity.touch();
        let payload = match message {
            Message::Text(text) => {
                binary.store(false, Ordering::Relaxed);
                Bytes::from(text)
            }
            Message::Binary(data) => {
                binary.store(true, Ordering::Relaxed);
                data
            }
            Message::Ping(_) => {
                bump(&counters.keepalives_in);
                let _ = connection.queue.try_send(Outbound::KeepAliveResponse);
                continue;
            }
            Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
        };
        // Some clients send CRLF keep-alives inside WebSocket messages too.
        if payload.iter().all(|&b| b == b'\r' || b == b'\n') {
            if !payload.is_empty() {
                bump(&counters.keepalives_in);
            }
            continue;
        }
        if !connection.deliver(payload).await {
            return CloseReason::Shutdown;
        }
    }
}

fn classify(counters: &TransportCounters, error: WsError) -> CloseReason {
    match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => CloseReason::PeerClosed,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CloseReason::PeerClosed,
        WsError::Io(error) => CloseReason::Io(error),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            bump(&counters.dropped_oversize);
            CloseReason::Misbehaved(error.to_string())
        }
        error => {
            bump(&counters.dropped_framing);
            CloseReason::Misbehaved(error.to_string())
        }
    }
}

fn write_failed(error: WsError) -> CloseReason {
    match error {
        WsError::Io(error) => CloseReason::Io(error),
        error => CloseReason::Io(std::io::Error::other(error)),
    }
}

async fn write<S>(
    connection: &Connection,
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    queue: &mut mpsc::Receiver<Outbound>,
    binary: &AtomicBool,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let counters = connection.shared.counters.of(connection.transport);
    // The connection holds a sender itself, so the queue stays open while it runs.
    while let Some(item) = queue.recv().await {
        let mut item = Some(item);
        while let Some(next) = item.take().or_else(|| queue.try_recv().ok()) {
            if let Some(message) = frame(counters, next, binary.load(Ordering::Relaxed)) {
                if let Err(error) = sink.feed(message).await {
                    return write_failed(error);
                }
            }
        }
        // Also writes a pong tungstenite queued in answer to a ping.
        if let Err(error) = sink.flush().await {
            return write_failed(error);
        }
        connection.activity.touch();
    }
    CloseReason::Shutdown
}

/// The WebSocket message for a queued item: text unless the peer uses binary frames or the
/// SIP message is not UTF-8 (a binary body).
fn frame(counters: &TransportCounters, item: Outbound, binary: bool) -> Option<Message> {
    let Outbound::Message(message) = item else {
        return None;
    };
    bump(&counters.messages_out);
    if binary {
        return Some(Message::Binary(message));
    }
    Some(match Utf8Bytes::try_from(message.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(message),
    })
}
