//! SIP transactions.
