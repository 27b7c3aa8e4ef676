//! TCP and TLS connections: a byte stream framed by `Content-Length` (RFC 3261 §18.3), with
//! RFC 5626 CRLFCRLF pings answered by a CRLF pong.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use sip_message::framer::{Frame, FramingError, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::connection::{CloseReason, Connection, Outbound};
use crate::counters::{bump, TransportCounters};

/// Free buffer space asked of each read. Small, as SIP messages are, so that many idle
/// connections cost little; a larger message grows the buffer as it arrives.
const READ_CHUNK: usize = 4 * 1024;
/// Queued messages gathered into one write, up to about this many bytes.
const BATCH_LIMIT: usize = 64 * 1024;

/// Runs the connection until it ends, then closes it in order.
pub(crate) async fn serve<S>(connection: Connection, mut queue: mpsc::Receiver<Outbound>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mid_write = AtomicBool::new(false);
    let reason = tokio::select! {
        reason = read(&connection, &mut reader) => reason,
        reason = write(&connection, &mut writer, &mut queue, &mid_write) => reason,
    };
    // If the reader ended while a write was under way, part of a message may be on the
    // wire: anything written after it would be misframed by the peer.
    let interrupted = mid_write.load(Ordering::Relaxed);
    let shared = connection.shared.clone();
    let transport = connection.transport;
    let finish = |pending: Vec<Outbound>| async move {
        if !interrupted {
            let counters = shared.counters.of(transport);
            let mut batch = BytesMut::new();
            for item in pending {
                batch.extend_from_slice(&wire_bytes(counters, item));
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
        }
        // Flushes, then FIN (or TLS close_notify).
        let _ = writer.shutdown().await;
    };
    connection.close(reason, queue, finish).await;
}

async fn read<R>(connection: &Connection, reader: &mut R) -> CloseReason
where
    R: AsyncRead + Unpin,
{
    let shared = &connection.shared;
    let counters = shared.counters.of(connection.transport);
    let mut framer = StreamFramer::new(shared.limits.framer());
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    let idle = connection.idle_expired();
    tokio::pin!(idle);
    loop {
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            () = shared.closing.cancelled() => return CloseReason::Shutdown,
            () = &mut idle => return CloseReason::Idle,
            read = reader.read_buf(&mut buffer) => read,
        };
        match read {
            Ok(0) if framer.is_mid_message() => return CloseReason::Truncated,
            Ok(0) => return CloseReason::PeerClosed,
            Ok(_) => connection.activity.touch(),
            Err(error) => return CloseReason::Io(error),
        }
        loop {
            match framer.next_frame(&mut buffer) {
                Ok(None) => break,
                Ok(Some(Frame::Message(message))) => {
                    if !connection.deliver(message).await {
                        return CloseReason::Shutdown;
                    }
                }
                Ok(Some(Frame::KeepAlivePing)) => {
                    bump(&counters.keepalives_in);
                    // A full queue means data is flowing anyway, which serves as the pong.
                    let _ = connection.queue.try_send(Outbound::KeepAliveResponse);
                }
                Err(error) => {
                    let oversize = matches!(
                        error,
                        FramingError::MessageTooLarge { .. }
                            | FramingError::HeaderSectionTooLarge { .. }
                            | FramingError::TooManyHeaders { .. }
                    );
                    bump(if oversize {
                        &counters.dropped_oversize
                    } else {
                        &counters.dropped_framing
                    });
                    return CloseReason::Misbehaved(error.to_string());
                }
            }
        }
    }
}

/// Writes queued messages. What is already queued when the writer wakes goes out in one
/// write; a lone message is written as it is, without copying.
async fn write<W>(
    connection: &Connection,
    writer: &mut W,
    queue: &mut mpsc::Receiver<Outbound>,
    mid_write: &AtomicBool,
) -> CloseReason
where
    W: AsyncWrite + Unpin,
{
    let counters = connection.shared.counters.of(connection.transport);
    // The connection holds a sender itself, so the queue stays open while it runs.
    while let Some(first) = queue.recv().await {
        let mut bytes = wire_bytes(counters, first);
        if let Ok(second) = queue.try_recv() {
            let mut batch = BytesMut::with_capacity(BATCH_LIMIT.min(bytes.len().saturating_mul(4)));
            batch.extend_from_slice(&bytes);
            batch.extend_from_slice(&wire_bytes(counters, second));
            while batch.len() < BATCH_LIMIT {
                let Ok(item) = queue.try_recv() else {
                    break;
                };
                batch.extend_from_slice(&wire_bytes(counters, item));
            }
            bytes = batch.freeze();
        }
        mid_write.store(true, Ordering::Relaxed);
        let written = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            return CloseReason::Io(error);
        }
        mid_write.store(false, Ordering::Relaxed);
        connection.activity.touch();
    }
    CloseReason::Shutdown
}

/// The bytes to write for a queued item.
fn wire_bytes(counters: &TransportCounters, item: Outbound) -> Bytes {
    match item {
        Outbound::Message(message) => {
            bump(&counters.messages_out);
            message
        }
        Outbound::KeepAliveResponse => Bytes::from_static(b"\r\n"),
    }
}
