//! The two migration folders stay in step: from 0005 on (see `migrations/README.md` for
//! why not before), every migration has the same number and name in both dialects.

use std::collections::BTreeSet;
use std::path::Path;

/// The first migration written under the rule.
const PAIRED_FROM: u32 = 5;

fn names(dialect: &str) -> BTreeSet<String> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .into_string()
                .expect("a UTF-8 file name")
        })
        .filter(|name| {
            let number: u32 = name
                .split('_')
                .next()
                .and_then(|number| number.parse().ok())
                .unwrap_or_else(|| panic!("{dialect}/{name} starts with its number"));
            number >= PAIRED_FROM
        })
        .collect()
}

#[test]
fn every_migration_has_the_same_number_and_name_in_both_dialects() {
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite.symmetric_difference(&postgres).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "a migration is missing its twin in the other dialect"
    );
}
