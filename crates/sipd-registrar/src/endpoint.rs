//! What sipd knows of an endpoint besides its secrets: who it is, which account owns it, and
//! what it may do. Cached with its Digest credentials, so both are as fresh as each other.

use std::fmt;

use sipd_store::Credentials;

/// An endpoint's identity, owner and permissions: the caller a proxy authenticated, or the
/// callee it located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Internal id of the endpoint (the AOR owner, `Binding::endpoint_pk`).
    pub endpoint_pk: i64,
    /// The SIP user name (the AOR's user part and the Digest user name).
    pub username: Box<str>,
    /// The account that owns the endpoint (a main account or a sub-account).
    pub account_id: i64,
    /// The owner's main account: the owner itself for a main account, else its parent. Two
    /// endpoints with the same family belong to one customer.
    pub family_id: i64,
    /// The application the endpoint is bound to (internal id), if any.
    pub application_id: Option<i64>,
    pub permissions: Permissions,
}

impl EndpointInfo {
    pub(crate) fn from_store(row: &Credentials) -> EndpointInfo {
        let flags = [
            (Permission::Voice, row.allow_voice),
            (Permission::Video, row.allow_video),
            (Permission::Message, row.allow_message),
            (Permission::SameDomain, row.allow_same_domain),
            (Permission::OtherDomains, row.allow_other_domains),
            (Permission::Phones, row.allow_phones),
            (Permission::Apps, row.allow_apps),
        ];
        EndpointInfo {
            endpoint_pk: row.endpoint_pk,
            username: row.username.as_str().into(),
            account_id: row.account_id,
            family_id: row.account_family_id,
            application_id: row.application_id,
            permissions: flags
                .into_iter()
                .filter(|&(_, allowed)| allowed)
                .map(|(permission, _)| permission)
                .collect(),
        }
    }
}

/// One thing an endpoint may be allowed to do (the endpoint's `allow_*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `allow_voice`: place calls (INVITE).
    Voice,
    /// `allow_video`: place calls that offer video.
    Video,
    /// `allow_message`: send MESSAGE requests.
    Message,
    /// `allow_same_domain`: reach endpoints of its own account and its family.
    SameDomain,
    /// `allow_other_domains`: reach SIP URIs of other domains.
    OtherDomains,
    /// `allow_phones`: reach telephone numbers.
    Phones,
    /// `allow_apps`: reach applications.
    Apps,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 7] = [
        Permission::Voice,
        Permission::Video,
        Permission::Message,
        Permission::SameDomain,
        Permission::OtherDomains,
        Permission::Phones,
        Permission::Apps,
    ];

    /// The endpoint field's name (`allow_voice`, …), as the API shows it: for reason phrases
    /// and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Voice => "allow_voice",
            Permission::Video => "allow_video",
            Permission::Message => "allow_message",
            Permission::SameDomain => "allow_same_domain",
            Permission::OtherDomains => "allow_other_domains",
            Permission::Phones => "allow_phones",
            Permission::Apps => "allow_apps",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Permission`]s in one byte (one is cached per endpoint).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No permission at all.
    pub const NONE: Permissions = Permissions(0);

    /// Whether `permission` is granted.
    pub fn allows(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// This set with `permission` granted too.
    pub fn with(self, permission: Permission) -> Permissions {
        Permissions(self.0 | permission.bit())
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(permissions: I) -> Permissions {
        permissions
            .into_iter()
            .fold(Permissions::NONE, Permissions::with)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                Permission::ALL
                    .into_iter()
                    .filter(|&permission| self.allows(permission)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_independent_bits() {
        for permission in Permission::ALL {
            let only = Permissions::NONE.with(permission);
            let but: Permissions = Permission::ALL
                .into_iter()
                .filter(|&other| other != permission)
                .collect();
            for other in Permission::ALL {
                assert_eq!(only.allows(other), other == permission);
                assert_eq!(but.allows(other), other != permission);
            }
        }
        assert_eq!(
            format!("{:?}", Permissions::NONE.with(Permission::Phones)),
            "{Phones}"
        );
    }
}
