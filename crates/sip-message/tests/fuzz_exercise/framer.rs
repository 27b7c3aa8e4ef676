//! Exercise for the `framer` fuzz target: frames the input once in one piece
//! and once in pseudo-random chunks, checks both give the same frames, and
//! that the parser sees each frame as exactly one message.

use bytes::BytesMut;
use sip_message::framer::{Frame, FramerConfig, StreamFramer};
use sip_message::Message;

/// The first byte picks the limits and the chunking; the rest is the stream.
pub fn framer(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    // Small limits half of the time, so that every limit check is reached.
    let config = if control & 1 == 0 {
        FramerConfig::default()
    } else {
        FramerConfig {
            max_message_size: 512,
            max_header_count: 8,
            max_header_section_size: 256,
        }
    };
    let whole = frame_stream(config, stream, |_| stream.len().max(1));
    // xorshift32 seeded from the control byte; 0 < chunk <= max_chunk.
    let max_chunk = u32::from(control >> 1) % 40 + 1;
    let mut state = u32::from(control).wrapping_mul(0x9E37_79B9) | 1;
    let chunked = frame_stream(config, stream, |_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % max_chunk + 1) as usize
    });
    assert_eq!(whole.frames, chunked.frames);
    assert_eq!(whole.failed, chunked.failed);
    for frame in &whole.frames {
        if let Frame::Message(frame) = frame {
            assert!(frame.len() <= config.max_message_size);
            assert!(!frame.starts_with(b"\r\n"));
            // Framer and parser must agree on where the message ends. (The
            // parser also skips a stray CR or LF at the start, which the
            // framer leaves in the frame.)
            if let Ok(message) = Message::parse(frame.clone()) {
                let skipped = frame.len() - message.as_bytes().len();
                assert!(frame.ends_with(message.as_bytes()), "{frame:?}");
                assert!(
                    frame[..skipped].iter().all(|b| matches!(b, b'\r' | b'\n')),
                    "{frame:?}"
                );
            }
        }
    }
}

struct Outcome {
    frames: Vec<Frame>,
    failed: bool,
}

fn frame_stream(
    config: FramerConfig,
    stream: &[u8],
    mut next_chunk_len: impl FnMut(usize) -> usize,
) -> Outcome {
    let mut framer = StreamFramer::new(config);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    while fed < stream.len() {
        let len = next_chunk_len(fed).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + len]);
        fed += len;
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    // Errors are final.
                    assert_eq!(framer.next_frame(&mut buf), Err(error));
                    return Outcome {
                        frames,
                        failed: true,
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        failed: false,
    }
}
