//! The device id each Relica origin gets: its name when that can serve as a device id, its
//! UUID otherwise. The rule looks at the whole document so an id never depends on which origins
//! one import selects.

use std::collections::HashMap;

use uuid::Uuid;

use super::document::RelicaDocument;

/// Whether an origin name can serve as our device id: non-empty, at most 255 characters
/// (`devices.id` is `VARCHAR(255)`), no whitespace, no control characters, none of `,` `/` `\`
/// (restic splits tags on commas; slashes would break unit and task names), and not itself a
/// UUID (so it can never collide with an id chosen by the UUID fallback).
pub fn is_valid_device_id(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '/' | '\\'))
        && Uuid::parse_str(name).is_err()
}

/// The device id chosen for every origin of the document, keyed by origin id.
///
/// Rule: the origin's **name** when [`is_valid_device_id`] holds and no other origin of the
/// whole document has the same name compared case-insensitively; otherwise the origin's **UUID**
/// (lowercase, hyphenated). The rule looks at all origins, not only the filtered ones, so a
/// device keeps its id whatever `origins_filter` a later import uses. Ids are unique: names are
/// unique case-insensitively, UUIDs are unique, and a name that parses as a UUID is never used.
/// The restic-fleet config on that machine must use the same device id.
pub fn device_ids(doc: &RelicaDocument) -> HashMap<Uuid, String> {
    let mut name_count: HashMap<String, usize> = HashMap::new();
    for o in &doc.origins {
        *name_count.entry(o.name.to_lowercase()).or_default() += 1;
    }
    doc.origins
        .iter()
        .map(|o| {
            let unique = name_count[&o.name.to_lowercase()] == 1;
            let id = if unique && is_valid_device_id(&o.name) {
                o.name.clone()
            } else {
                o.id.to_string()
            };
            (o.id, id)
        })
        .collect()
}
