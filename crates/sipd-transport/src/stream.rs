//! TCP and TLS connections: a byte stream framed by `Content-Length` (RFC 3261 §18.3), with
//! RFC 5626 CRLFCRLF pings answered by a CRLF pong.

use bytes::BytesMut;
use sip_message::framer::{Frame, FramingError, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use crate::connection::{CloseReason, Connection, Outbound};
use crate::counters::{bump, TransportCounters};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Writes are gathered up to this size before going to the socket.
const WRITE_BUFFER: usize = 32 * 1024;

/// Runs the connection until it ends, then closes it in order.
pub(crate) async fn serve<S>(connection: Connection, mut queue: mpsc::Receiver<Outbound>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    let reason = tokio::select! {
        reason = read(&connection, &mut reader) => reason,
        reason = write(&connection, &mut writer, &mut queue) => reason,
    };
    let shared = connection.shared.clone();
    let transport = connection.transport;
    let finish = |pending: Vec<Outbound>| async move {
        let counters = shared.counters.of(transport);
        for item in pending {
            if write_one(counters, &mut writer, item).await.is_err() {
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

/// Writes queued messages, gathering what is already queued into one flush.
async fn write<W>(
    connection: &Connection,
    writer: &mut BufWriter<W>,
    queue: &mut mpsc::Receiver<Outbound>,
) -> CloseReason
where
    W: AsyncWrite + Unpin,
{
    let counters = connection.shared.counters.of(connection.transport);
    // The connection holds a sender itself, so the queue stays open while it runs.
    while let Some(item) = queue.recv().await {
        if let Err(error) = write_one(counters, writer, item).await {
            return CloseReason::Io(error);
        }
        while let Ok(item) = queue.try_recv() {
            if let Err(error) = write_one(counters, writer, item).await {
                return CloseReason::Io(error);
            }
        }
        if let Err(error) = writer.flush().await {
            return CloseReason::Io(error);
        }
        connection.activity.touch();
    }
    CloseReason::Shutdown
}

async fn write_one<W>(
    counters: &TransportCounters,
    writer: &mut BufWriter<W>,
    item: Outbound,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    match item {
        Outbound::Message(message) => {
            writer.write_all(&message).await?;
            bump(&counters.messages_out);
        }
        Outbound::KeepAliveResponse => writer.write_all(b"\r\n").await?,
    }
    Ok(())
}
