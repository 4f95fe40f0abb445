//! Every naming rule of docs/relationalize.md, one test each.

use serde_json::{Value, json};

use super::*;
use crate::table::Cell;
use Expected::{Float, Int, Key, Null, Str};

/// A cell with its string resolved, to compare with.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Key(i64),
}

fn run(docs: &[Value]) -> Tables {
    let mut tables = Tables::new();
    let mut f = Flattener::new("r1");
    for d in docs {
        let text = d.to_string();
        let doc = crate::doc::Doc::parse(&text).unwrap();
        f.document(&mut tables, "survey", doc.root_object().unwrap())
            .unwrap();
    }
    tables
}

fn names(tables: &Tables, table: &str) -> Vec<String> {
    tables[table]
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

fn cells(tables: &Tables, table: &str, column: &str) -> Vec<Expected> {
    let rows = tables[table].rows;
    let column = tables[table]
        .column(column)
        .unwrap_or_else(|| panic!("{table} has no column {column}"));
    (0..rows)
        .map(|row| match column.get(row) {
            Cell::Null => Null,
            Cell::Bool(b) => Expected::Bool(b),
            Cell::Int(i) => Int(i),
            Cell::Float(f) => Float(f),
            Cell::Str(t) => Str(column.text(t).to_owned()),
            Cell::Key(k) => Key(k),
        })
        .collect()
}

fn s(v: &str) -> Expected {
    Str(v.into())
}

#[test]
fn struct_fields_are_joined_with_underscores_and_dots_in_names_too() {
    let t = run(&[json!({"a": {"b": {"c": 1}, "d": "x"}, "objectfield.filename": "f.txt"})]);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["survey"]);
    assert_eq!(
        names(&t, "survey"),
        ["recordid", "a_b_c", "a_d", "objectfield_filename"]
    );
    assert_eq!(cells(&t, "survey", "a_b_c"), [Int(1)]);
    assert_eq!(cells(&t, "survey", "objectfield_filename"), [s("f.txt")]);
}

#[test]
fn an_array_of_scalars_is_a_child_table_with_id_index_and_field_val() {
    let t = run(&[json!({"tags": ["a", "b"]})]);
    assert_eq!(cells(&t, "survey", "tags"), [Key(1)]);
    assert_eq!(
        names(&t, "survey_tags"),
        ["recordid", "id", "index", "tags_val"]
    );
    assert_eq!(cells(&t, "survey_tags", "id"), [Int(1), Int(1)]);
    assert_eq!(cells(&t, "survey_tags", "index"), [Int(0), Int(1)]);
    assert_eq!(cells(&t, "survey_tags", "tags_val"), [s("a"), s("b")]);
    assert_eq!(cells(&t, "survey_tags", "recordid"), [s("r1"), s("r1")]);
}

#[test]
fn an_array_of_objects_has_the_element_fields_without_the_field_val_prefix() {
    let t = run(&[json!({"steps": [{"name": "x", "at": {"t": 1}}, {"name": "y"}]})]);
    assert_eq!(
        names(&t, "survey_steps"),
        ["recordid", "id", "index", "name", "at_t"]
    );
    assert_eq!(cells(&t, "survey_steps", "name"), [s("x"), s("y")]);
    assert_eq!(cells(&t, "survey_steps", "at_t"), [Int(1), Null]);
}

#[test]
fn an_array_in_a_struct_is_named_by_its_flattened_path() {
    let t = run(&[json!({"a": {"b": [1]}})]);
    assert_eq!(cells(&t, "survey", "a_b"), [Key(1)]);
    assert_eq!(cells(&t, "survey_a_b", "a_b_val"), [Int(1)]);
}

#[test]
fn an_array_in_an_array_element_is_a_grandchild_named_parent_field_subfield() {
    let t = run(&[json!({"steps": [{"inner": [5, 6]}]})]);
    assert_eq!(cells(&t, "survey", "steps"), [Key(1)]);
    assert_eq!(cells(&t, "survey_steps", "inner"), [Key(2)]);
    assert_eq!(
        names(&t, "survey_steps_inner"),
        ["recordid", "id", "index", "inner_val"]
    );
    assert_eq!(cells(&t, "survey_steps_inner", "id"), [Int(2), Int(2)]);
    assert_eq!(
        cells(&t, "survey_steps_inner", "inner_val"),
        [Int(5), Int(6)]
    );
}

#[test]
fn arrays_in_arrays_chain_val_tables() {
    let t = run(&[json!({"matrix": [[1, 2], [3]]})]);
    assert_eq!(cells(&t, "survey_matrix", "matrix_val"), [Key(2), Key(3)]);
    assert_eq!(cells(&t, "survey_matrix", "index"), [Int(0), Int(1)]);
    assert_eq!(
        names(&t, "survey_matrix_val"),
        ["recordid", "id", "index", "matrix_val_val"]
    );
    assert_eq!(
        cells(&t, "survey_matrix_val", "id"),
        [Int(2), Int(2), Int(3)]
    );
    assert_eq!(
        cells(&t, "survey_matrix_val", "matrix_val_val"),
        [Int(1), Int(2), Int(3)]
    );
}

#[test]
fn an_empty_array_has_a_join_key_and_no_child_rows() {
    let t = run(&[json!({"tags": []})]);
    assert_eq!(cells(&t, "survey", "tags"), [Key(1)]);
    assert_eq!(t["survey_tags"].rows, 0);
}

#[test]
fn nulls_and_missing_fields_are_null_cells_and_an_empty_object_adds_nothing() {
    let t = run(&[json!({"a": 1, "b": null, "e": {}}), json!({"c": "x"})]);
    assert_eq!(names(&t, "survey"), ["recordid", "a", "b", "c"]);
    assert_eq!(cells(&t, "survey", "a"), [Int(1), Null]);
    assert_eq!(cells(&t, "survey", "b"), [Null, Null]);
    assert_eq!(cells(&t, "survey", "c"), [Null, s("x")]);
}

#[test]
fn join_keys_are_numbered_per_archive_across_documents() {
    let t = run(&[
        json!({"tags": ["a"]}),
        json!({"tags": ["b"], "more": [true]}),
    ]);
    assert_eq!(cells(&t, "survey", "tags"), [Key(1), Key(2)]);
    assert_eq!(cells(&t, "survey", "more"), [Null, Key(3)]);
    assert_eq!(cells(&t, "survey_tags", "id"), [Int(1), Int(2)]);
}

#[test]
fn numbers_keep_integer_and_float_apart() {
    let t = run(&[
        json!({"n": 1}),
        json!({"n": 1.5}),
        json!({"n": 18446744073709551615u64}),
    ]);
    assert_eq!(
        cells(&t, "survey", "n"),
        [Int(1), Float(1.5), Float(18446744073709551615.0)]
    );
}

#[test]
fn a_field_named_like_a_column_already_set_in_its_row_replaces_that_value() {
    // Two paths that flatten to one name, and element fields named like the child columns.
    let t = run(&[
        json!({"a_b": 1, "a": {"b": "x"}, "steps": [{"id": "own", "v": 1}, {"v": 2}]}),
        json!({"a_b": 2, "steps": [{"index": 7, "recordid": "r9"}]}),
    ]);
    assert_eq!(cells(&t, "survey", "a_b"), [s("x"), Int(2)]);
    assert_eq!(cells(&t, "survey_steps", "id"), [s("own"), Int(1), Int(2)]);
    assert_eq!(cells(&t, "survey_steps", "index"), [Int(0), Int(1), Int(7)]);
    assert_eq!(
        cells(&t, "survey_steps", "recordid"),
        [s("r1"), s("r1"), s("r9")]
    );
    assert_eq!(cells(&t, "survey_steps", "v"), [Int(1), Int(2), Null]);
}
