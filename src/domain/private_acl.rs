//! Who may open the config file and the state directory on Windows: the security descriptor,
//! in SDDL, that [`crate::platform::acl`] applies.
//!
//! Both hold the database password and the local copy (the repository password), so only
//! SYSTEM (the scheduled tasks run as SYSTEM) and the Administrators group (who run `init`,
//! `sync` and `run` by hand) get in, with full access. The DACL is protected: nothing is
//! inherited from `%ProgramData%`, whose default grants every user read access. A directory's
//! entries are inherited by the files and subdirectories created in it (the spool, the locks,
//! the local copy), so those need no call of their own.

/// A trustee of the private DACL, as SDDL names its well-known SID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trustee {
    /// `NT AUTHORITY\SYSTEM` (`S-1-5-18`).
    System,
    /// `BUILTIN\Administrators` (`S-1-5-32-544`).
    Administrators,
}

impl Trustee {
    /// The SDDL abbreviation of the SID.
    pub fn sddl(self) -> &'static str {
        match self {
            Trustee::System => "SY",
            Trustee::Administrators => "BA",
        }
    }
}

/// The only trustees of the private DACL, each with full access (`FA`, `FILE_ALL_ACCESS`).
pub const TRUSTEES: [Trustee; 2] = [Trustee::System, Trustee::Administrators];

/// What the descriptor is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A directory: its entries are inherited by what is created in it (`OICI`).
    Directory,
    /// A file: inheritance flags mean nothing on a file, so none are given.
    File,
}

/// The SDDL of the private DACL for `object`: `D:P` (a protected DACL, nothing inherited from
/// the parent) followed by one allow entry with full access per trustee of [`TRUSTEES`].
pub fn sddl(object: Object) -> String {
    let inherit = match object {
        Object::Directory => "OICI",
        Object::File => "",
    };
    let mut out = String::from("D:P");
    for trustee in TRUSTEES {
        out.push_str(&format!("(A;{inherit};FA;;;{})", trustee.sddl()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One access control entry of an SDDL string, its six fields as written.
    #[derive(Debug)]
    struct Ace {
        kind: String,
        flags: String,
        rights: String,
        object_guid: String,
        inherit_guid: String,
        sid: String,
    }

    /// Parses `D:<flags>(ace)(ace)...` independently of the builder: the DACL flags and the
    /// entries; anything else (an owner, a group, a SACL, text between entries) fails the parse.
    fn parse_dacl(sddl: &str) -> Result<(String, Vec<Ace>), String> {
        let rest = sddl.strip_prefix("D:").ok_or("no DACL")?;
        let open = rest.find('(').unwrap_or(rest.len());
        let flags = rest[..open].to_string();
        let mut aces = Vec::new();
        let mut body = &rest[open..];
        while !body.is_empty() {
            let inner = body.strip_prefix('(').ok_or("text between entries")?;
            let close = inner.find(')').ok_or("unclosed entry")?;
            let fields: Vec<&str> = inner[..close].split(';').collect();
            let [kind, flags, rights, object_guid, inherit_guid, sid] = fields[..] else {
                return Err(format!("entry with {} fields", fields.len()));
            };
            aces.push(Ace {
                kind: kind.into(),
                flags: flags.into(),
                rights: rights.into(),
                object_guid: object_guid.into(),
                inherit_guid: inherit_guid.into(),
                sid: sid.into(),
            });
            body = &inner[close + 1..];
        }
        Ok((flags, aces))
    }

    fn check(object: Object, inherit_flags: &str) {
        let text = sddl(object);
        let (dacl_flags, aces) = parse_dacl(&text).unwrap();
        // Protected, and neither auto-inherit flag that would let the parent's entries in.
        assert_eq!(dacl_flags, "P", "{text}");
        let sids: Vec<&str> = aces.iter().map(|a| a.sid.as_str()).collect();
        assert_eq!(sids, ["SY", "BA"], "{text}");
        for ace in &aces {
            assert_eq!(ace.kind, "A", "allow entries only: {text}");
            assert_eq!(ace.rights, "FA", "full access: {text}");
            assert_eq!(ace.flags, inherit_flags, "{text}");
            assert!(!ace.flags.contains("ID"), "no entry inherited: {text}");
            assert!(
                ace.object_guid.is_empty() && ace.inherit_guid.is_empty(),
                "{text}"
            );
        }
        for other in [
            "WD",
            "BU",
            "AU",
            "IU",
            "CO",
            "OW",
            "S-1-1-0",
            "S-1-5-32-545",
        ] {
            assert!(
                !sids.contains(&other),
                "{other} must not be granted: {text}"
            );
        }
    }

    #[test]
    fn directory_descriptor_grants_system_and_administrators_only_and_is_inherited_down() {
        check(Object::Directory, "OICI");
        assert_eq!(
            sddl(Object::Directory),
            "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
        );
    }

    #[test]
    fn file_descriptor_grants_system_and_administrators_only() {
        check(Object::File, "");
        assert_eq!(sddl(Object::File), "D:P(A;;FA;;;SY)(A;;FA;;;BA)");
    }

    #[test]
    fn the_test_parser_rejects_what_it_does_not_know() {
        assert!(parse_dacl("O:BAD:P(A;;FA;;;SY)").is_err());
        assert!(parse_dacl("D:P(A;;FA;;SY)").is_err());
        assert!(parse_dacl("D:P(A;;FA;;;SY)x(A;;FA;;;BA)").is_err());
    }
}
