//! Property-based round trips: generated Rust values -> Python -> Rust give the same value,
//! for every supported builtin type and nested containers of them, in an embedded
//! interpreter. Python's own view is checked too where it is cheap (`int(str)`, `float`
//! bits, `len`).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::path::PathBuf;

use bindery_capsule::Python;
use bindery_cast::{FromPython, IntoPython, cast, to_python};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use smallvec::SmallVec;
use support::{repr, with_python};

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `strategy` through a Rust -> Python -> Rust round trip, comparing with `same`.
fn check<'py, T, S>(py: Python<'py>, strategy: S, same: fn(&T, &T) -> bool)
where
    S: Strategy<Value = T>,
    T: IntoPython<'py> + for<'a> FromPython<'a, 'py> + Clone + Debug,
{
    let mut runner = TestRunner::new(config());
    runner
        .run(&strategy, |value| {
            let obj = to_python(py, value.clone())
                .map_err(|e| TestCaseError::fail(format!("to Python: {e}")))?;
            let back: T = cast(obj.as_borrowed())
                .map_err(|e| TestCaseError::fail(format!("back from {}: {e}", repr(&obj))))?;
            prop_assert!(same(&value, &back), "{value:?} came back as {back:?}");
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{}: {failure}", std::any::type_name::<T>()));
}

fn eq<T: PartialEq>(a: &T, b: &T) -> bool {
    a == b
}

#[test]
fn integers_of_every_width_round_trip() {
    with_python(|py| {
        check(py, any::<i8>(), eq);
        check(py, any::<i16>(), eq);
        check(py, any::<i32>(), eq);
        check(py, any::<i64>(), eq);
        // Around the one-digit ints read inline (|value| < 2**30).
        check(py, -(1_i64 << 31)..(1_i64 << 31), eq);
        check(py, -(1_i32 << 16)..(1_i32 << 16), eq);
        check(py, any::<isize>(), eq);
        check(py, any::<u8>(), eq);
        check(py, any::<u16>(), eq);
        check(py, any::<u32>(), eq);
        check(py, any::<u64>(), eq);
        check(py, any::<usize>(), eq);
        check(py, any::<i128>(), eq);
        check(py, any::<u128>(), eq);
    });
}

#[test]
fn python_prints_integers_as_rust_does() {
    with_python(|py| {
        let mut runner = TestRunner::new(config());
        runner
            .run(&any::<i128>(), |value| {
                let obj = to_python(py, value).unwrap();
                prop_assert_eq!(repr(&obj), value.to_string());
                Ok(())
            })
            .unwrap();
    });
}

#[test]
fn integers_out_of_range_are_refused_not_truncated() {
    with_python(|py| {
        let mut runner = TestRunner::new(config());
        runner
            .run(&any::<i64>(), |value| {
                let obj = to_python(py, value).unwrap();
                let as_i32 = cast::<i32>(obj.as_borrowed()).ok();
                prop_assert_eq!(as_i32, i32::try_from(value).ok());
                let as_u16 = cast::<u16>(obj.as_borrowed()).ok();
                prop_assert_eq!(as_u16, u16::try_from(value).ok());
                let as_u64 = cast::<u64>(obj.as_borrowed()).ok();
                prop_assert_eq!(as_u64, u64::try_from(value).ok());
                Ok(())
            })
            .unwrap();
    });
}

#[test]
fn floats_round_trip_bit_for_bit() {
    with_python(|py| {
        let same_bits = |a: &f64, b: &f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        check(py, any::<f64>(), same_bits);
        check(py, proptest::num::f64::ANY, same_bits);
        check(py, proptest::num::f32::ANY, |a: &f32, b: &f32| {
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
        });
    });
}

#[test]
fn text_round_trips() {
    with_python(|py| {
        check(py, any::<String>(), eq);
        check(py, "\\PC*", eq);
        check(py, any::<char>(), eq);
        check(py, any::<bool>(), eq);
        check(py, proptest::collection::vec(any::<u8>(), 0..64), eq);
        check(py, "[^\u{0}]{0,40}".prop_map(PathBuf::from), eq);
    });
}

#[test]
fn containers_round_trip() {
    with_python(|py| {
        check(py, proptest::collection::vec(any::<i64>(), 0..40), eq);
        check(
            py,
            proptest::collection::vec(
                any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()),
                0..40,
            ),
            eq,
        );
        check(
            py,
            proptest::collection::hash_map(any::<String>(), any::<i64>(), 0..20),
            eq::<HashMap<String, i64>>,
        );
        check(
            py,
            proptest::collection::btree_map(
                any::<i32>(),
                proptest::collection::vec(any::<String>(), 0..3),
                0..10,
            ),
            eq::<BTreeMap<i32, Vec<String>>>,
        );
        check(
            py,
            proptest::collection::hash_set(any::<i64>(), 0..20),
            eq::<HashSet<i64>>,
        );
        check(
            py,
            proptest::collection::btree_set(any::<String>(), 0..20),
            eq::<BTreeSet<String>>,
        );
        check(
            py,
            proptest::collection::vec(
                proptest::option::of((any::<i32>(), any::<String>(), any::<bool>())),
                0..10,
            ),
            eq,
        );
        check(
            py,
            proptest::collection::vec(proptest::collection::vec(any::<u64>(), 0..5), 0..5),
            eq,
        );
        check(py, any::<[i16; 5]>(), eq);
        check(
            py,
            proptest::collection::vec(any::<u32>(), 0..12).prop_map(SmallVec::<[u32; 4]>::from_vec),
            eq,
        );
        check(
            py,
            (
                any::<u8>(),
                any::<i128>(),
                any::<char>(),
                any::<Option<String>>(),
                any::<(bool, u16)>(),
            ),
            eq,
        );
    });
}
