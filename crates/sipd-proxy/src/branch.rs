//! Via branches of forwarded requests: `z9hG4bKsd<shard>.<loop hash>.<n>`.
//!
//! * The shard (hex) lets the dispatcher hand a response to the event loop that holds its
//!   client transaction without any lookup ([`shard_of`]).
//! * The loop hash covers what identifies the request as received (RFC 3261 §16.6 step 8,
//!   without the top Via as RFC 5393 §4.2 explains): Request-URI, From and To tags, Call-ID,
//!   CSeq number and Proxy-Require. Not Proxy-Authorization: we consume our own, so a
//!   request looping back through us would always look new. A request coming back with one of
//!   our branches carrying the same hash has looped (482); a different hash is a spiral (it
//!   was retargeted on the way) and goes on (§16.3 step 4).
//! * The counter makes each branch unique.

use std::hash::{BuildHasher, Hash, Hasher};

use sip_message::{HeaderName, Message};

/// What every branch this proxy writes starts with.
const PREFIX: &str = "z9hG4bKsd";

/// The shard encoded in one of our branches; `None` for anyone else's.
pub fn shard_of(branch: &str) -> Option<u16> {
    let rest = branch.strip_prefix(PREFIX)?;
    let digits = rest.split('.').next()?;
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// Makes branches for one shard. The hasher is shared by every shard of a process (clones
/// of one `RandomState` hash alike), so a loop is seen whichever shard it comes back to.
#[derive(Debug, Clone)]
pub(crate) struct Branches {
    shard: u16,
    hasher: std::hash::RandomState,
    next: u64,
}

impl Branches {
    pub(crate) fn new(shard: u16, hasher: std::hash::RandomState) -> Branches {
        Branches {
            shard,
            hasher,
            next: 0,
        }
    }

    /// The loop-detection hash of a received request.
    pub(crate) fn loop_hash(&self, request: &Message) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        request.request_uri_raw().hash(&mut hasher);
        request.from_tag().hash(&mut hasher);
        request.to_tag().hash(&mut hasher);
        request.call_id().ok().hash(&mut hasher);
        request.cseq().ok().map(|c| c.seq).hash(&mut hasher);
        for value in request.headers_named(HeaderName::ProxyRequire) {
            value.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// A new branch for forwarding a request whose loop hash is `loop_hash`.
    pub(crate) fn next(&mut self, loop_hash: u64) -> String {
        self.next += 1;
        format!("{PREFIX}{:x}.{loop_hash:016x}.{:x}", self.shard, self.next)
    }

    /// The branch for forwarding an ACK for a 2xx statelessly (RFC 3261 §16.11): the same
    /// for every retransmission of that ACK, since it derives from the ACK's own branch.
    pub(crate) fn stateless(&self, incoming_branch: &str) -> String {
        let hash = self.hasher.hash_one(incoming_branch);
        format!("{PREFIX}{:x}.{hash:016x}.s", self.shard)
    }

    /// Whether the request carries a Via of ours with this loop hash: it has been through
    /// here in this same form before.
    pub(crate) fn has_looped(&self, request: &Message, loop_hash: u64) -> bool {
        let wanted = format!("{loop_hash:016x}");
        request.vias().flatten().any(|via| {
            via.branch()
                .and_then(|b| b.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('.').nth(1))
                == Some(wanted.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_round_trips_and_foreign_branches_have_none() {
        let mut branches = Branches::new(0x1f, std::hash::RandomState::new());
        let branch = branches.next(42);
        assert!(branch.starts_with("z9hG4bK"));
        assert_eq!(shard_of(&branch), Some(0x1f));
        assert_ne!(branches.next(42), branch);
        assert_eq!(shard_of(&branches.stateless("z9hG4bKabc")), Some(0x1f));
        assert_eq!(
            branches.stateless("z9hG4bKabc"),
            branches.stateless("z9hG4bKabc")
        );
        for foreign in [
            "z9hG4bK776asdhds",
            "z9hG4bKsd",
            "z9hG4bKsdzz.1.1",
            "",
            "sd1.2.3",
        ] {
            assert_eq!(shard_of(foreign), None, "{foreign}");
        }
    }
}
