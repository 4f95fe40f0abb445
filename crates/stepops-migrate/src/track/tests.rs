//! Unit tests of the change collector and the baseline checks.
use super::*;
use crate::model::Relation;

fn spec(name: &str, range_key: &str, pk: &[&str]) -> TableSpec {
    TableSpec {
        name: format!("public.{name}"),
        relation: Relation {
            schema: "public".into(),
            relname: name.into(),
        },
        key: crate::model::KeyKind::Integer,
        key_columns: Vec::new(),
        range_key: range_key.into(),
        key_is_unique: pk == [range_key],
        columns: vec!["id".into(), "parent".into(), "v".into()],
        types: vec!["bigint".into(), "bigint".into(), "text".into()],
        parents: Vec::new(),
        primary_key: pk.iter().map(|s| (*s).into()).collect(),
        conflict_keys: Vec::new(),
    }
}

fn line(s: &str) -> Change {
    decode::parse(s).unwrap().remove(0)
}

#[test]
fn keys_of_inserts_updates_deletes_and_key_moves() {
    let specs = [spec("t", "id", &["id"])];
    let mut c = Collector::new(&specs, Some(&["public.t".to_owned()][..]));
    c.add(line(
        "table public.t: INSERT: id[bigint]:5 parent[bigint]:1 v[text]:'x'",
    ));
    c.add(line(
        "table public.t: UPDATE: id[bigint]:9 parent[bigint]:1 v[text]:'y'",
    ));
    c.add(line("table public.t: UPDATE: old-key: id[bigint]:20 new-tuple: id[bigint]:21 parent[bigint]:1 v[text]:'z'"));
    c.add(line("table public.t: DELETE: id[bigint]:7"));
    c.add(line("table other.t: DELETE: id[bigint]:99"));
    c.add(line("table public.unmigrated: DELETE: id[bigint]:98"));
    let TableChanges::Keys { keys, lookups } = &c.tables["public.t"].1 else {
        panic!("{:?}", c.tables["public.t"].1)
    };
    assert_eq!(keys.iter().copied().collect::<Vec<_>>(), [5, 7, 9, 20, 21]);
    assert!(lookups.is_empty());
    assert_eq!(runs(keys), [(5, 5), (7, 7), (9, 9), (20, 21)]);
}

#[test]
fn range_key_outside_the_primary_key_is_looked_up_by_identity() {
    let specs = [spec("c", "parent", &["id"])];
    let mut c = Collector::new(&specs, Some(&["public.c".to_owned()][..]));
    c.add(line(
        "table public.c: UPDATE: id[bigint]:3 parent[bigint]:8 v[text]:'moved'",
    ));
    c.add(line("table public.c: DELETE: id[bigint]:4"));
    let TableChanges::Keys { keys, lookups } = &c.tables["public.c"].1 else {
        panic!()
    };
    assert_eq!(keys.iter().copied().collect::<Vec<_>>(), [8]);
    assert_eq!(
        lookups[&vec!["id".to_owned()]],
        [vec!["3".to_owned()], vec!["4".to_owned()]]
    );
}

#[test]
fn truncate_missing_identity_and_no_baseline_mean_a_full_comparison() {
    let specs = [spec("t", "id", &["id"]), spec("u", "id", &["id"])];
    let mut c = Collector::new(
        &specs,
        Some(&["public.t".to_owned(), "public.u".to_owned()][..]),
    );
    c.add(line("table public.t: TRUNCATE: (no-flags)"));
    c.add(line("table public.u: DELETE: (no-tuple-data)"));
    assert!(matches!(c.tables["public.t"].1, TableChanges::Full(_)));
    assert!(matches!(c.tables["public.u"].1, TableChanges::Full(_)));
    let c = Collector::new(&specs, Some(&["public.t".to_owned()][..]));
    assert!(matches!(c.tables["public.u"].1, TableChanges::Full(_)));
    let c = Collector::new(&specs, None);
    assert!(matches!(c.tables["public.t"].1, TableChanges::Full(_)));
}

#[test]
fn too_many_changes_fall_back_to_a_full_comparison() {
    let specs = [spec("t", "id", &["id"])];
    let mut c = Collector::new(&specs, Some(&["public.t".to_owned()][..]));
    for i in 0..=MAX_TRACKED_KEYS as i64 {
        c.add(line(&format!("table public.t: DELETE: id[bigint]:{i}")));
    }
    assert!(matches!(c.tables["public.t"].1, TableChanges::Full(_)));
}

#[test]
fn a_baseline_is_usable_only_for_its_slot_database_and_position() {
    let b = TrackingState {
        slot: "s".into(),
        database: "src".into(),
        snapshot: "10:12:11".into(),
        slot_lsn: "0/100".into(),
        advance_to: "0/200".into(),
        tables: vec![],
    };
    assert!(usable(&b, "s", "src", 0x100).is_ok());
    assert!(usable(&b, "s", "src", 0x200).is_ok());
    assert!(usable(&b, "s", "src", 0x201).unwrap_err().contains("past"));
    assert!(usable(&b, "other", "src", 0x100).is_err());
    assert!(usable(&b, "s", "dst", 0x100).is_err());
    assert!(
        TrackingConfig {
            slot: "stepops_dev".into(),
            full_check: false
        }
        .validate()
        .is_ok()
    );
    for bad in ["", "Upper", "with-dash", &"x".repeat(64)] {
        assert!(
            TrackingConfig {
                slot: bad.into(),
                full_check: false
            }
            .validate()
            .is_err(),
            "{bad}"
        );
    }
}
