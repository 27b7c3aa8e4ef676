//! Framing SIP messages out of a byte stream (TCP, TLS).
