//! RFC 3261 §10.3 binding rules, with RFC 5626 flows, RFC 5627 instance ids and RFC 3327
//! Path: from a REGISTER, the AOR's stored bindings and `now`, the AOR's new binding set.

use std::borrow::Cow;
use std::net::SocketAddr;

use sip_message::{Contact, ContactAddr, FlowId, HeaderName, Message, Uri};
use sipd_store::{Binding, BindingChange};

use crate::config::RegistrarConfig;
use crate::registrar::Authorized;
use crate::response::header_safe;

/// Where the REGISTER came from, as the transport saw it. Recorded in every binding it writes,
/// so requests reach a device behind NAT at this address or over this connection rather than
/// at the (often private) address in its Contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Source address of the packet or connection.
    pub remote: SocketAddr,
    /// The flow it arrived on (the connection, or the UDP source address).
    pub flow: FlowId,
    /// The local address it arrived on: an AOR naming this address is of our domain (see
    /// [`LocalDomain::is_ours`](crate::LocalDomain::is_ours)). A listener on all interfaces
    /// that cannot tell the packet's destination gives the unspecified address, which names
    /// nothing.
    pub local: SocketAddr,
}

/// Why a REGISTER's binding changes are refused, as the response to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
}

impl Refusal {
    fn bad(reason: &'static str) -> Self {
        Refusal {
            status: 400,
            reason,
        }
    }
}

pub(crate) const TOO_BRIEF: Refusal = Refusal {
    status: 423,
    reason: "Interval Too Brief",
};

/// The AOR's bindings after the REGISTER, and what to tell the client.
pub(crate) struct Outcome {
    /// Live bindings once committed, stored ones first.
    pub(crate) bindings: Vec<Binding>,
    /// What to commit: deletions first, then upserts.
    pub(crate) changes: Vec<BindingChange>,
    /// Outbound processing (RFC 5626 §6) was applied: the 200 carries `Require: outbound`.
    pub(crate) outbound: bool,
    /// Path values to echo in the 200 (the client supports Path).
    pub(crate) echo_path: Option<String>,
}

/// A binding of the working set.
struct Slot {
    binding: Binding,
    /// Written by this REGISTER: not subject to its Call-ID/CSeq check.
    written: bool,
}

/// One Contact of the REGISTER, checked.
struct Requested<'m> {
    uri: Uri<'m>,
    q: Option<u16>,
    /// Granted interval; 0 removes the binding.
    expires_secs: u32,
    /// `+sip.instance` without its quotes.
    instance: Option<Cow<'m, str>>,
    /// `reg-id`, only when outbound processing applies.
    reg_id: Option<u32>,
}

/// Applies the REGISTER of `authorized` to `current` (the AOR's stored bindings; others are
/// ignored).
pub(crate) fn apply(
    config: &RegistrarConfig,
    request: &Message,
    authorized: &Authorized,
    current: &[Binding],
    source: &Source,
    now_ms: i64,
) -> Result<Outcome, Refusal> {
    let call_id = request
        .call_id()
        .map_err(|_| Refusal::bad("Malformed Call-ID"))?;
    let cseq = request
        .cseq()
        .map_err(|_| Refusal::bad("Malformed CSeq"))?
        .seq;
    let header_expires = request
        .expires()
        .map_err(|_| Refusal::bad("Malformed Expires"))?;
    let contacts = request
        .contacts()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Refusal::bad("Malformed Contact"))?;
    let (supports_path, supports_outbound) = supported_extensions(request)?;
    let path = joined_path(request);
    let endpoint_pk = authorized.endpoint_pk();

    // Expired bindings are left to the store's purge, which keeps one refreshed meanwhile by
    // another node; deleting them by key here could delete that refresh.
    let live = current
        .iter()
        .filter(|b| b.endpoint_pk == endpoint_pk && b.expires_at_ms > now_ms);
    let mut slots: Vec<Slot> = live
        .clone()
        .map(|binding| Slot {
            binding: binding.clone(),
            written: false,
        })
        .collect();

    let mut outbound = false;
    let mut changes = Vec::new();
    if contacts.iter().any(|c| matches!(c, Contact::Star)) {
        // §10.3 step 6: `*` only alone and only with Expires: 0.
        if contacts.len() != 1 || header_expires != Some(0) {
            return Err(Refusal::bad("Invalid Contact: *"));
        }
        for slot in &slots {
            check_order(slot, call_id, cseq)?;
        }
        slots.clear();
        // Also bindings this node's view missed.
        changes.push(BindingChange::DeleteAllForEndpoint { endpoint_pk });
    } else if !contacts.is_empty() {
        let outbound_applies = outbound_applies(request, &contacts, supports_outbound)?;
        let requested = requested_contacts(config, &contacts, header_expires, outbound_applies)?;
        outbound = requested.iter().any(|r| r.reg_id.is_some());
        let new_binding = NewBinding {
            config,
            endpoint_pk,
            call_id,
            cseq,
            user_agent: request
                .user_agent()
                .map(|ua| header_safe(&String::from_utf8_lossy(ua)).into_owned()),
            path: path.as_deref(),
            source,
            now_ms,
        };
        for wanted in &requested {
            update(&mut slots, wanted, &new_binding)?;
        }
        limit_contacts(&mut slots, config.max_contacts_per_aor)?;
        // By store key: a binding replaced under another key (a flow's binding refreshed by a
        // Contact without reg-id, say) leaves its old row behind unless deleted.
        let gone = live.filter(|b| !slots.iter().any(|s| s.binding.key() == b.key()));
        changes.extend(gone.cloned().map(BindingChange::delete));
        let written = slots.iter().filter(|s| s.written);
        // Conditional on the credentials the REGISTER was authenticated with, so a password
        // change committed meanwhile leaves no binding behind.
        changes.extend(written.map(|s| BindingChange::UpsertAuthenticated {
            binding: s.binding.clone(),
            credentials_changed_at_ms: authorized.credentials_changed_at_ms(),
        }));
    }

    Ok(Outcome {
        bindings: slots.into_iter().map(|s| s.binding).collect(),
        changes,
        outbound,
        echo_path: path.filter(|_| supports_path),
    })
}

/// Whether the client supports `path` and `outbound` (RFC 3327, RFC 5626).
fn supported_extensions(request: &Message) -> Result<(bool, bool), Refusal> {
    let (mut path, mut outbound) = (false, false);
    for tag in request.supported() {
        let tag = tag.map_err(|_| Refusal::bad("Malformed Supported"))?;
        path |= tag.eq_ignore_ascii_case("path");
        outbound |= tag.eq_ignore_ascii_case("outbound");
    }
    Ok((path, outbound))
}

/// The request's Path values in order, comma-joined as stored and echoed (folded line breaks
/// flattened: the proxy turns them into Route headers).
fn joined_path(request: &Message) -> Option<String> {
    let mut joined: Option<String> = None;
    for value in request.headers_named(HeaderName::Path) {
        let value = String::from_utf8_lossy(value);
        let value = header_safe(&value);
        match &mut joined {
            Some(joined) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            None => joined = Some(value.into_owned()),
        }
    }
    joined
}

/// RFC 5626 §6: outbound processing applies when the client supports it and this registrar is
/// its first hop, or the first hop put `ob` in its Path URI. A client asking for it through a
/// first hop that cannot do it gets 439.
fn outbound_applies(
    request: &Message,
    contacts: &[Contact<'_>],
    supports_outbound: bool,
) -> Result<bool, Refusal> {
    if !supports_outbound {
        return Ok(false);
    }
    let first_hop = request.vias().take(2).count() == 1;
    let first_path_has_ob = || {
        request
            .paths()
            .next()
            .and_then(Result::ok)
            .is_some_and(|path| path.uri().as_sip().is_some_and(|uri| uri.ob()))
    };
    if first_hop || first_path_has_ob() {
        return Ok(true);
    }
    let asks_for_flow = contacts
        .iter()
        .filter_map(Contact::address)
        .any(|c| c.reg_id().is_some() && c.sip_instance().is_some());
    if asks_for_flow {
        return Err(Refusal {
            status: 439,
            reason: "First Hop Lacks Outbound Support",
        });
    }
    Ok(false)
}

/// Checks every Contact and settles its interval (§10.3 step 6 and RFC 5626 §6).
fn requested_contacts<'m>(
    config: &RegistrarConfig,
    contacts: &[Contact<'m>],
    header_expires: Option<u32>,
    outbound_applies: bool,
) -> Result<Vec<Requested<'m>>, Refusal> {
    let mut requested = Vec::with_capacity(contacts.len());
    let mut too_brief = false;
    for contact in contacts.iter().filter_map(Contact::address) {
        // The `expires` parameter wins over the header; the registrar's default applies to
        // neither.
        let asked = contact
            .expires()
            .or(header_expires)
            .unwrap_or(config.default_expires_secs);
        too_brief |= asked != 0 && asked < config.min_expires_secs;
        let instance = instance_id(contact)?;
        // A reg-id without an instance id is ignored (RFC 5626 §6).
        let reg_id = contact
            .reg_id()
            .filter(|_| outbound_applies && instance.is_some());
        requested.push(Requested {
            uri: contact.uri(),
            q: contact.q(),
            expires_secs: asked.min(config.max_expires_secs),
            instance,
            reg_id,
        });
    }
    if too_brief {
        return Err(TOO_BRIEF);
    }
    // RFC 5626 §6: a flow registration binds exactly one contact.
    let adding = requested.iter().filter(|r| r.expires_secs != 0);
    if adding.clone().count() > 1 && adding.clone().any(|r| r.reg_id.is_some()) {
        return Err(Refusal::bad("More than one Contact with reg-id"));
    }
    Ok(requested)
}

fn instance_id<'m>(contact: &ContactAddr<'m>) -> Result<Option<Cow<'m, str>>, Refusal> {
    let malformed = || Refusal::bad("Malformed +sip.instance");
    Ok(match contact.sip_instance() {
        None => None,
        Some(Cow::Borrowed(raw)) => Some(Cow::Borrowed(
            std::str::from_utf8(raw).map_err(|_| malformed())?,
        )),
        Some(Cow::Owned(raw)) => Some(Cow::Owned(String::from_utf8(raw).map_err(|_| malformed())?)),
    })
}

/// What every binding written by this REGISTER shares.
struct NewBinding<'a> {
    config: &'a RegistrarConfig,
    endpoint_pk: i64,
    call_id: &'a str,
    cseq: u32,
    user_agent: Option<String>,
    path: Option<&'a str>,
    source: &'a Source,
    now_ms: i64,
}

impl NewBinding<'_> {
    fn binding(&self, wanted: &Requested<'_>) -> Binding {
        let lifetime_ms = i64::from(wanted.expires_secs) * 1000;
        Binding {
            endpoint_pk: self.endpoint_pk,
            contact_uri: wanted.uri.as_str().to_owned(),
            expires_at_ms: self.now_ms.saturating_add(lifetime_ms),
            q: wanted.q.map(i32::from),
            call_id: self.call_id.to_owned(),
            cseq: i64::from(self.cseq),
            user_agent: self.user_agent.clone(),
            received: self.source.remote.to_string(),
            transport: self.source.flow.transport().as_str().to_owned(),
            flow_id: Some(self.source.flow.to_string()),
            instance_id: wanted.instance.as_deref().map(str::to_owned),
            reg_id: wanted.reg_id.map(i64::from),
            path: self.path.map(str::to_owned),
            node_id: self.config.node_id.clone(),
            updated_at_ms: self.now_ms,
        }
    }
}

/// §10.3 steps 7–8 for one Contact: add, refresh, move to a new flow, or remove its binding.
fn update(
    slots: &mut Vec<Slot>,
    wanted: &Requested<'_>,
    new: &NewBinding<'_>,
) -> Result<(), Refusal> {
    let found = slots
        .iter()
        .position(|slot| same_binding(&slot.binding, wanted));
    if let Some(index) = found {
        check_order(&slots[index], new.call_id, new.cseq)?;
    }
    if wanted.expires_secs == 0 {
        if let Some(index) = found {
            slots.remove(index);
        }
        return Ok(());
    }
    let slot = Slot {
        binding: new.binding(wanted),
        written: true,
    };
    let kept = match found {
        Some(index) => {
            slots[index] = slot;
            index
        }
        None => {
            slots.push(slot);
            slots.len() - 1
        }
    };
    // The store keys bindings by (contact URI, reg-id), not by instance: a binding with the
    // same store key that this Contact did not refer to (another device's instance id on the
    // same URI and reg-id, say) would be overwritten there, so it goes here too. Two flows of
    // one device with the same URI differ in reg-id and both stay (RFC 5626 §6).
    let key = slots[kept].binding.key();
    if let Some(twin) = (0..slots.len()).find(|&i| i != kept && slots[i].binding.key() == key) {
        slots.remove(twin);
    }
    Ok(())
}

/// Which stored binding a Contact refers to: by instance and reg-id for a flow (RFC 5626), by
/// instance for a device without flows (RFC 5627), else by URI (RFC 3261 §19.1.4).
fn same_binding(binding: &Binding, wanted: &Requested<'_>) -> bool {
    match (&wanted.instance, wanted.reg_id) {
        (Some(instance), reg_id) => {
            binding.instance_id.as_deref() == Some(instance.as_ref())
                && binding.reg_id == reg_id.map(i64::from)
        }
        (None, _) => match Uri::parse(&binding.contact_uri) {
            Ok(stored) => stored.equivalent(&wanted.uri),
            Err(_) => binding.contact_uri == wanted.uri.as_str(),
        },
    }
}

/// §10.3 step 7: a stored binding changes only for another Call-ID or a higher CSeq; otherwise
/// the whole REGISTER fails (with 500, as §10.3 prescribes for a failed update).
fn check_order(slot: &Slot, call_id: &str, cseq: u32) -> Result<(), Refusal> {
    if !slot.written && slot.binding.call_id == call_id && i64::from(cseq) <= slot.binding.cseq {
        return Err(Refusal {
            status: 500,
            reason: "Out-of-Order CSeq",
        });
    }
    Ok(())
}

/// More than `max` bindings: the REGISTER's own beyond `max` are refused (403); otherwise the
/// least recently refreshed stored ones make room, since a device that moved without
/// unregistering leaves bindings behind that would otherwise lock the AOR until they expire.
fn limit_contacts(slots: &mut Vec<Slot>, max: usize) -> Result<(), Refusal> {
    if slots.iter().filter(|s| s.written).count() > max {
        return Err(Refusal {
            status: 403,
            reason: "Too Many Contacts",
        });
    }
    while slots.len() > max {
        let oldest = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.written)
            .min_by_key(|(_, s)| (s.binding.updated_at_ms, s.binding.expires_at_ms))
            .map(|(index, _)| index);
        match oldest {
            Some(index) => {
                slots.remove(index);
            }
            None => break,
        }
    }
    Ok(())
}
