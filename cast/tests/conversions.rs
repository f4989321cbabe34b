//! Conversions of builtin types in an embedded interpreter (the one this test binary was
//! built for): round trips at the edges, and every refusal with its exception class and
//! message. The same conversions run on every Python version in `py_cast.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{Debug, Display};
use std::path::PathBuf;

use bindery_capsule::{Owned, Python};
use bindery_cast::{CastError, ExceptionKind, FromPython, IntoPython, cast, to_python};
use pyo3_ffi as ffi;
use smallvec::SmallVec;
use support::{accept, eval, eval_in, exec, namespace, py_eq, raised, refuse, repr, with_python};

/// `value` -> Python -> Rust gives `value` back, and Python prints it as `printed`.
fn round_trip<'py, T>(py: Python<'py>, value: T, printed: &str)
where
    T: IntoPython<'py> + for<'a> FromPython<'a, 'py> + Clone + PartialEq + Debug,
{
    let obj = to_python(py, value.clone()).expect("to Python");
    assert_eq!(repr(&obj), printed, "{value:?}");
    let back: T = cast(obj.as_borrowed()).expect("back to Rust");
    assert_eq!(back, value);
}

fn int_limits<'py, T>(py: Python<'py>, min: T, max: T, name: &str)
where
    T: IntoPython<'py> + for<'a> FromPython<'a, 'py> + Clone + PartialEq + Debug + Display,
{
    round_trip(py, min.clone(), &min.to_string());
    round_trip(py, max.clone(), &max.to_string());
    let above = format!("{max} + 1");
    let above_value = eval(py, &above);
    let above_text = repr(&above_value);
    assert_eq!(
        refuse::<T>(py, &above),
        format!(
            "OverflowError: Python int {above_text} does not fit in Rust '{name}' (range {min}..={max})"
        )
    );
    let below = format!("{min} - 1");
    let below_text = repr(&eval(py, &below));
    assert_eq!(
        refuse::<T>(py, &below),
        format!(
            "OverflowError: Python int {below_text} does not fit in Rust '{name}' (range {min}..={max})"
        )
    );
}

#[test]
fn every_integer_width_round_trips_its_limits_and_refuses_one_past_them() {
    with_python(|py| {
        int_limits(py, i8::MIN, i8::MAX, "i8");
        int_limits(py, i16::MIN, i16::MAX, "i16");
        int_limits(py, i32::MIN, i32::MAX, "i32");
        int_limits(py, i64::MIN, i64::MAX, "i64");
        int_limits(py, isize::MIN, isize::MAX, "isize");
        int_limits(py, u8::MIN, u8::MAX, "u8");
        int_limits(py, u16::MIN, u16::MAX, "u16");
        int_limits(py, u32::MIN, u32::MAX, "u32");
        int_limits(py, u64::MIN, u64::MAX, "u64");
        int_limits(py, usize::MIN, usize::MAX, "usize");
        int_limits(py, i128::MIN, i128::MAX, "i128");
        int_limits(py, u128::MIN, u128::MAX, "u128");
        // Values around the 64-bit seams of the 128-bit paths.
        for value in [
            -1_i128,
            i64::MIN as i128 - 1,
            i64::MAX as i128 + 1,
            u64::MAX as i128,
            u64::MAX as i128 + 1,
            -(u64::MAX as i128),
            (1_i128 << 100) + 12345,
            -(1_i128 << 100) - 12345,
        ] {
            round_trip(py, value, &value.to_string());
        }
        for value in [
            u64::MAX as u128,
            u64::MAX as u128 + 1,
            1_u128 << 127,
            (1_u128 << 127) - 1,
        ] {
            round_trip(py, value, &value.to_string());
        }
        assert_eq!(
            refuse::<u128>(py, "-1"),
            format!(
                "OverflowError: Python int -1 does not fit in Rust 'u128' (range 0..={})",
                u128::MAX
            )
        );
    });
}

#[test]
fn integers_accept_bool_and_index_like_cpython_and_refuse_float_and_str() {
    with_python(|py| {
        assert_eq!(accept::<i64>(py, "True"), 1);
        assert_eq!(accept::<u8>(py, "False"), 0);
        // int subclasses and objects with __index__, as CPython's int parameters.
        let ns = namespace(py);
        exec(
            py,
            &ns,
            "class MyInt(int): pass\n\
             class Index:\n    def __init__(self, v): self.v = v\n    def __index__(self): return self.v\n",
        );
        let sub = eval_in(py, &ns, "MyInt(42)");
        assert_eq!(cast::<u16>(sub.as_borrowed()).unwrap(), 42);
        let index = eval_in(py, &ns, "Index(-7)");
        assert_eq!(cast::<i8>(index.as_borrowed()).unwrap(), -7);
        let big_index = eval_in(py, &ns, "Index(1000)");
        assert_eq!(
            support::raised(py, cast::<u8>(big_index.as_borrowed()).unwrap_err()),
            "OverflowError: Python int 1000 does not fit in Rust 'u8' (range 0..=255)"
        );
        assert_eq!(
            refuse::<i64>(py, "1.0"),
            "TypeError: cannot convert Python 'float' to Rust 'i64'"
        );
        assert_eq!(
            refuse::<i64>(py, "'1'"),
            "TypeError: cannot convert Python 'str' to Rust 'i64'"
        );
        assert_eq!(
            refuse::<u32>(py, "None"),
            "TypeError: cannot convert Python 'NoneType' to Rust 'u32'"
        );
        assert_eq!(
            refuse::<u64>(py, "decimal.Decimal(3)"),
            "TypeError: cannot convert Python 'decimal.Decimal' to Rust 'u64'"
        );
    });
}

#[test]
fn huge_ints_are_named_shortly_in_overflow_messages() {
    with_python(|py| {
        let message = refuse::<i64>(py, "2**200");
        assert!(
            message.starts_with(
                "OverflowError: Python int 1606938044258990275541962092341162602522...792835301376 (61 characters)"
            ),
            "{message}"
        );
        assert!(
            message.contains("...") && message.contains("(61 characters)"),
            "{message}"
        );
        assert!(
            message.ends_with(
                "does not fit in Rust 'i64' (range -9223372036854775808..=9223372036854775807)"
            ),
            "{message}"
        );
        // 3.11+ refuse to print ints of more than 4300 digits; older versions print them.
        let message = refuse::<u8>(py, "10**5000");
        assert!(
            message.contains("<an int too large to print>")
                || message.contains("(5001 characters)"),
            "{message}"
        );
    });
}

#[test]
fn bool_accepts_only_true_and_false() {
    with_python(|py| {
        round_trip(py, true, "True");
        round_trip(py, false, "False");
        assert_eq!(
            refuse::<bool>(py, "1"),
            "TypeError: cannot convert Python 'int' to Rust 'bool'"
        );
        assert_eq!(
            refuse::<bool>(py, "'yes'"),
            "TypeError: cannot convert Python 'str' to Rust 'bool'"
        );
    });
}

#[test]
fn floats_keep_every_edge_value_and_accept_what_cpython_accepts() {
    with_python(|py| {
        round_trip(py, 0.5_f64, "0.5");
        round_trip(py, f64::INFINITY, "inf");
        round_trip(py, f64::NEG_INFINITY, "-inf");
        round_trip(py, f64::MAX, "1.7976931348623157e+308");
        round_trip(py, 5e-324_f64, "5e-324");
        let nan = to_python(py, f64::NAN).unwrap();
        assert_eq!(repr(&nan), "nan");
        assert!(cast::<f64>(nan.as_borrowed()).unwrap().is_nan());
        let negative_zero: f64 = accept(py, "-0.0");
        assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
        // ints, also beyond 2**53 (rounded as float(int) rounds), and __float__/__index__.
        assert_eq!(accept::<f64>(py, "3"), 3.0);
        assert_eq!(accept::<f64>(py, "2**53 + 1"), 9007199254740992.0);
        assert_eq!(accept::<f64>(py, "True"), 1.0);
        assert_eq!(accept::<f64>(py, "fractions.Fraction(1, 4)"), 0.25);
        assert_eq!(accept::<f64>(py, "decimal.Decimal('2.5')"), 2.5);
        let message = refuse::<f64>(py, "10**400");
        assert!(
            message.starts_with(
                "OverflowError: Python int 1000000000000000000000000000000000000000..."
            ),
            "{message}"
        );
        assert!(message.ends_with("does not fit in Rust 'f64' (range -1.7976931348623157e308..=1.7976931348623157e308)"), "{message}");
        assert_eq!(
            refuse::<f64>(py, "'1.0'"),
            "TypeError: cannot convert Python 'str' to Rust 'f64'"
        );
        assert_eq!(
            refuse::<f64>(py, "1j"),
            "TypeError: cannot convert Python 'complex' to Rust 'f64'"
        );
        // f32: rounded to nearest; finite values beyond its range overflow.
        round_trip(py, 0.5_f32, "0.5");
        assert_eq!(accept::<f32>(py, "0.1"), 0.1_f32);
        assert_eq!(accept::<f32>(py, "float('inf')"), f32::INFINITY);
        assert!(accept::<f32>(py, "float('nan')").is_nan());
        assert_eq!(
            refuse::<f32>(py, "1e300"),
            "OverflowError: Python float 1e300 does not fit in Rust 'f32' (range -3.4028235e38..=3.4028235e38)"
        );
        let float_sub = eval(py, "type('F', (float,), {})(2.25)");
        assert_eq!(cast::<f64>(float_sub.as_borrowed()).unwrap(), 2.25);
    });
}

#[test]
fn strings_round_trip_including_empty_and_non_ascii() {
    with_python(|py| {
        for text in [
            "",
            "plain",
            "héllo wörld",
            "日本語のテキスト",
            "🦀 crab",
            "a\0b",
        ] {
            let obj = to_python(py, text).unwrap();
            assert_eq!(cast::<String>(obj.as_borrowed()).unwrap(), text);
            assert_eq!(cast::<&str>(obj.as_borrowed()).unwrap(), text);
            let owned = to_python(py, text.to_owned()).unwrap();
            assert!(py_eq(&obj, &owned));
        }
        assert_eq!(accept::<String>(py, "'x' * 100").len(), 100);
        let subclass = eval(py, "type('S', (str,), {})('sub')");
        assert_eq!(cast::<String>(subclass.as_borrowed()).unwrap(), "sub");
    });
}

#[test]
fn a_borrowed_str_is_not_copied() {
    with_python(|py| {
        let obj = eval(py, "'ünïcödé text'");
        let first: &str = cast(obj.as_borrowed()).unwrap();
        let second: &str = cast(obj.as_borrowed()).unwrap();
        let mut len = 0;
        // SAFETY: attached thread state; a live str; the buffer belongs to it.
        let inside = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut len) };
        assert_eq!(first.as_ptr(), inside.cast());
        assert_eq!(second.as_ptr(), first.as_ptr());
        assert_eq!(first.len(), len as usize);
    });
}

#[test]
fn lone_surrogates_are_refused_with_a_unicode_error() {
    with_python(|py| {
        assert_eq!(
            refuse::<String>(py, "'abc\\ud800def'"),
            "UnicodeError: cannot convert Python 'str' to Rust 'String': it holds the lone \
             surrogate U+D800 at index 3, which UTF-8 cannot encode (Rust text is always \
             valid UTF-8)"
        );
        let obj = eval(py, "'\\udfff'");
        let error = cast::<&str>(obj.as_borrowed()).unwrap_err();
        assert_eq!(error.kind(), ExceptionKind::UnicodeError);
        assert!(error.to_string().contains("U+DFFF at index 0"), "{error}");
        // The class is UnicodeError itself, a ValueError.
        error.restore(py);
        // SAFETY: attached thread state; reading exception class statics.
        unsafe {
            assert_eq!(ffi::PyErr_ExceptionMatches(ffi::PyExc_UnicodeError), 1);
            assert_eq!(ffi::PyErr_ExceptionMatches(ffi::PyExc_ValueError), 1);
            ffi::PyErr_Clear();
        }
        assert_eq!(
            refuse::<String>(py, "b'bytes'"),
            "TypeError: cannot convert Python 'bytes' to Rust 'String'"
        );
    });
}

#[test]
fn chars_need_exactly_one_code_point() {
    with_python(|py| {
        round_trip(py, 'é', "'é'");
        round_trip(py, '🦀', "'🦀'");
        assert_eq!(
            refuse::<char>(py, "'ab'"),
            "ValueError: expected a str of length 1 for Rust 'char', got a str of length 2"
        );
        assert_eq!(
            refuse::<char>(py, "''"),
            "ValueError: expected a str of length 1 for Rust 'char', got a str of length 0"
        );
        assert_eq!(
            refuse::<char>(py, "'\\udc80'"),
            "UnicodeError: cannot convert Python 'str' to Rust 'char': it is the lone surrogate \
             U+DC80, which is not a Unicode scalar value"
        );
        assert_eq!(
            refuse::<char>(py, "65"),
            "TypeError: cannot convert Python 'int' to Rust 'char'"
        );
    });
}

#[test]
fn bytes_become_vec_u8_and_borrowed_slices() {
    with_python(|py| {
        round_trip(py, vec![0_u8, 1, 255], "b'\\x00\\x01\\xff'");
        round_trip(py, Vec::<u8>::new(), "b''");
        assert_eq!(accept::<Vec<u8>>(py, "bytearray(b'ab')"), b"ab");
        assert_eq!(accept::<Vec<u8>>(py, "[1, 2, 255]"), [1, 2, 255]);
        assert_eq!(
            refuse::<Vec<u8>>(py, "[1, 256]"),
            "OverflowError: item 1 of Python 'list' for Rust 'Vec<u8>': Python int 256 does \
             not fit in Rust 'u8' (range 0..=255)"
        );
        // Other element types read bytes as the sequence of ints it is.
        assert_eq!(accept::<Vec<i64>>(py, "b'ab'"), [97, 98]);
        let obj = eval(py, "b'borrowed bytes'");
        let slice: &[u8] = cast(obj.as_borrowed()).unwrap();
        assert_eq!(slice, b"borrowed bytes");
        // SAFETY: a live bytes object.
        let inside = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) };
        assert_eq!(slice.as_ptr(), inside.cast());
        assert_eq!(repr(&to_python(py, &b"xy"[..]).unwrap()), "b'xy'");
        let obj = eval(py, "bytearray(b'mutable')");
        let error = cast::<&[u8]>(obj.as_borrowed()).unwrap_err();
        assert_eq!(
            raised(py, error),
            "TypeError: cannot convert Python 'bytearray' to Rust '&[u8]'"
        );
    });
}

#[test]
fn option_unit_and_paths() {
    with_python(|py| {
        round_trip(py, Some(5_i64), "5");
        round_trip(py, None::<i64>, "None");
        round_trip(py, (), "None");
        assert_eq!(
            refuse::<()>(py, "0"),
            "TypeError: cannot convert Python 'int' to Rust '()'"
        );
        assert_eq!(
            refuse::<Option<i64>>(py, "'x'"),
            "TypeError: cannot convert Python 'str' to Rust 'i64'"
        );
        assert_eq!(
            accept::<PathBuf>(py, "'/tmp/a b'"),
            PathBuf::from("/tmp/a b")
        );
        assert_eq!(
            accept::<PathBuf>(py, "pathlib.Path('/usr') / 'lib'"),
            PathBuf::from("/usr/lib")
        );
        // A file name that is not UTF-8 survives both ways (os.fsencode / os.fsdecode).
        let raw = accept::<PathBuf>(py, "b'/raw/\\xff'");
        let decoded = accept::<PathBuf>(py, "os.fsdecode(b'/raw/\\xff')");
        assert_eq!(raw, decoded);
        let back = to_python(py, raw).unwrap();
        assert!(py_eq(&back, &eval(py, "os.fsdecode(b'/raw/\\xff')")));
        assert_eq!(
            refuse::<PathBuf>(py, "42"),
            "TypeError: cannot convert Python 'int' to Rust 'PathBuf'"
        );
    });
}

#[test]
fn sequences_from_lists_tuples_and_other_sequences() {
    with_python(|py| {
        round_trip(py, vec![1.5_f64, -2.0, 1e100], "[1.5, -2.0, 1e+100]");
        round_trip(py, Vec::<i64>::new(), "[]");
        round_trip(
            py,
            vec![vec![1_i64], vec![], vec![2, 3]],
            "[[1], [], [2, 3]]",
        );
        round_trip(py, vec![Some("a".to_owned()), None], "['a', None]");
        assert_eq!(accept::<Vec<f64>>(py, "(1, 2.5)"), [1.0, 2.5]);
        // Runs of exact items and items that need the general path, mixed.
        assert_eq!(
            accept::<Vec<f64>>(
                py,
                "[1.0, 2, 3.5, True, 4.0, 5.0, fractions.Fraction(1, 2)]"
            ),
            [1.0, 2.0, 3.5, 1.0, 4.0, 5.0, 0.5]
        );
        assert_eq!(
            accept::<Vec<i64>>(py, "(1, True, 3, type('I', (int,), {})(4), 5)"),
            [1, 1, 3, 4, 5]
        );
        assert_eq!(accept::<Vec<i64>>(py, "range(4)"), [0, 1, 2, 3]);
        assert_eq!(
            accept::<Vec<String>>(py, "collections.deque(['x', 'y'])"),
            ["x", "y"]
        );
        assert_eq!(
            refuse::<Vec<f64>>(py, "[1.0, 'two']"),
            "TypeError: item 1 of Python 'list' for Rust 'Vec<f64>': cannot convert Python \
             'str' to Rust 'f64'"
        );
        assert_eq!(
            refuse::<Vec<Vec<i64>>>(py, "[[1], [2, None]]"),
            "TypeError: item 1 of Python 'list' for Rust 'Vec<Vec<i64>>': item 1 of Python \
             'list' for Rust 'Vec<i64>': cannot convert Python 'NoneType' to Rust 'i64'"
        );
        assert_eq!(
            refuse::<Vec<String>>(py, "'abc'"),
            "TypeError: cannot convert Python 'str' to Rust 'Vec<String>'"
        );
        assert_eq!(
            refuse::<Vec<char>>(py, "'abc'"),
            "TypeError: cannot convert Python 'str' to Rust 'Vec<char>'"
        );
        assert_eq!(
            refuse::<Vec<i64>>(py, "{1, 2}"),
            "TypeError: cannot convert Python 'set' to Rust 'Vec<i64>'"
        );
        assert_eq!(
            refuse::<Vec<i64>>(py, "(i for i in range(3))"),
            "TypeError: cannot convert Python 'generator' to Rust 'Vec<i64>'"
        );
        assert_eq!(
            refuse::<Vec<i64>>(py, "{'a': 1}"),
            "TypeError: cannot convert Python 'dict' to Rust 'Vec<i64>'"
        );
        let small: SmallVec<[i64; 4]> = accept(py, "[1, 2, 3, 4, 5, 6]");
        assert_eq!(small.as_slice(), [1, 2, 3, 4, 5, 6]);
        assert!(small.spilled());
        round_trip(py, SmallVec::<[u16; 2]>::from_slice(&[7, 8]), "[7, 8]");
        assert_eq!(
            refuse::<SmallVec<[i64; 2]>>(py, "'ab'"),
            "TypeError: cannot convert Python 'str' to Rust 'SmallVec<[i64; 2]>'"
        );
    });
}

#[test]
fn arrays_and_tuples_need_their_exact_length() {
    with_python(|py| {
        round_trip(py, [1.0_f64, 2.0, 3.0], "[1.0, 2.0, 3.0]");
        assert_eq!(accept::<[i64; 2]>(py, "(4, 5)"), [4, 5]);
        assert_eq!(
            refuse::<[f64; 3]>(py, "[1, 2, 3, 4, 5]"),
            "ValueError: expected a sequence of length 3 for Rust '[f64; 3]', got 5"
        );
        assert_eq!(
            refuse::<[f64; 3]>(py, "[1, 2, 'x']"),
            "TypeError: item 2 of Python 'list' for Rust '[f64; 3]': cannot convert Python \
             'str' to Rust 'f64'"
        );
        assert_eq!(
            refuse::<[u8; 2]>(py, "'ab'"),
            "TypeError: cannot convert Python 'str' to Rust '[u8; 2]'"
        );
        round_trip(py, (1_i64, "a".to_owned(), 2.5_f64), "(1, 'a', 2.5)");
        round_trip(py, (true,), "(True,)");
        round_trip(
            py,
            (
                1_u8,
                2_u16,
                3_u32,
                4_u64,
                5_i8,
                6_i16,
                7_i32,
                8_i64,
                9.0_f32,
                10.0_f64,
                'k',
                "l".to_owned(),
            ),
            "(1, 2, 3, 4, 5, 6, 7, 8, 9.0, 10.0, 'k', 'l')",
        );
        assert_eq!(
            accept::<(i64, String)>(py, "[1, 'from a list']"),
            (1, "from a list".to_owned())
        );
        assert_eq!(
            refuse::<(i64, String, f64)>(py, "(1, 'a')"),
            "ValueError: expected a sequence of length 3 for Rust '(i64, String, f64)', got 2"
        );
        assert_eq!(
            refuse::<(i64, String)>(py, "(1, 2)"),
            "TypeError: item 1 of Python 'tuple' for Rust '(i64, String)': cannot convert \
             Python 'int' to Rust 'String'"
        );
        assert_eq!(
            refuse::<(i64, i64)>(py, "'ab'"),
            "TypeError: cannot convert Python 'str' to Rust '(i64, i64)'"
        );
    });
}

#[test]
fn maps_and_sets() {
    with_python(|py| {
        let map: HashMap<String, i64> = accept(py, "{'a': 1, 'b': -2}");
        assert_eq!(
            map,
            HashMap::from([("a".to_owned(), 1), ("b".to_owned(), -2)])
        );
        round_trip(
            py,
            BTreeMap::from([(1_i64, vec!["x".to_owned()]), (2, vec![])]),
            "{1: ['x'], 2: []}",
        );
        let ordered: BTreeMap<String, f64> =
            accept(py, "collections.OrderedDict([('z', 1.0), ('a', 2)])");
        assert_eq!(ordered.keys().collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(
            refuse::<HashMap<String, i64>>(py, "{1: 2}"),
            "TypeError: dict keys must be 'str' for Rust 'HashMap<String, i64>', got 'int'"
        );
        assert_eq!(
            refuse::<BTreeMap<i64, i64>>(py, "{'k': 2}"),
            "TypeError: dict keys must be 'int' for Rust 'BTreeMap<i64, i64>', got 'str'"
        );
        assert_eq!(
            refuse::<HashMap<String, i64>>(py, "{'a': 'x'}"),
            "TypeError: value for key 'a' of Python 'dict' for Rust 'HashMap<String, i64>': \
             cannot convert Python 'str' to Rust 'i64'"
        );
        assert_eq!(
            refuse::<HashMap<u8, i64>>(py, "{300: 1}"),
            "OverflowError: key 300 of Python 'dict' for Rust 'HashMap<u8, i64>': Python int \
             300 does not fit in Rust 'u8' (range 0..=255)"
        );
        assert_eq!(
            refuse::<HashMap<String, i64>>(py, "[('a', 1)]"),
            "TypeError: cannot convert Python 'list' to Rust 'HashMap<String, i64>'"
        );
        let set: HashSet<i64> = accept(py, "{1, 2, 3}");
        assert_eq!(set, HashSet::from([1, 2, 3]));
        let frozen: BTreeSet<String> = accept(py, "frozenset(['b', 'a'])");
        assert_eq!(frozen.iter().collect::<Vec<_>>(), ["a", "b"]);
        round_trip(py, BTreeSet::from([3_i64, 1]), "{1, 3}");
        assert_eq!(
            refuse::<HashSet<i64>>(py, "[1, 2]"),
            "TypeError: cannot convert Python 'list' to Rust 'HashSet<i64>'"
        );
        assert_eq!(
            refuse::<BTreeSet<u8>>(py, "{-1}"),
            "OverflowError: element -1 of Python 'set' for Rust 'BTreeSet<u8>': Python int -1 \
             does not fit in Rust 'u8' (range 0..=255)"
        );
        // Unhashable keys are Python's own TypeError.
        let error = to_python(py, HashMap::from([(vec![1_i64], 1_i64)])).unwrap_err();
        assert_eq!(error.kind(), ExceptionKind::Raised);
        assert_eq!(raised(py, error), "TypeError: unhashable type: 'list'");
    });
}

#[test]
fn exceptions_raised_by_python_code_pass_through_unchanged() {
    with_python(|py| {
        let ns = namespace(py);
        exec(
            py,
            &ns,
            "class Bad:\n    def __index__(self): raise KeyError('from __index__')\n",
        );
        let obj = eval_in(py, &ns, "[1, Bad()]");
        let error = cast::<Vec<i64>>(obj.as_borrowed()).unwrap_err();
        assert_eq!(error.kind(), ExceptionKind::Raised);
        assert!(matches!(error.root(), CastError::Python(e) if e.type_name() == "KeyError"));
        assert_eq!(raised(py, error), "KeyError: 'from __index__'");
    });
}

#[test]
fn a_container_changed_by_an_element_conversion_is_refused_not_read_after_free() {
    with_python(|py| {
        let ns = namespace(py);
        exec(
            py,
            &ns,
            "class Clearing:\n    def __index__(self):\n        data.clear()\n        return 1\n\
             data = [1, Clearing(), 2, 3]\n\
             class Growing:\n    def __index__(self):\n        d['new'] = 0\n        return 1\n\
             d = {'a': Growing(), 'b': 2}\n",
        );
        let list = eval_in(py, &ns, "data");
        let error = cast::<Vec<i64>>(list.as_borrowed()).unwrap_err();
        assert_eq!(
            raised(py, error),
            "RuntimeError: Python 'list' changed size while it was converted to Rust 'Vec<i64>'"
        );
        let dict = eval_in(py, &ns, "d");
        let error = cast::<HashMap<String, i64>>(dict.as_borrowed()).unwrap_err();
        assert_eq!(
            raised(py, error),
            "RuntimeError: Python 'dict' changed size while it was converted to Rust \
             'HashMap<String, i64>'"
        );
    });
}

/// Casts an object and returns the refusal.
type Refusal = for<'py> fn(Owned<'py>) -> CastError;

#[test]
fn errors_become_the_python_exception_classes_they_name() {
    with_python(|py| {
        // SAFETY: reading exception class statics with an attached thread state.
        let (type_error, overflow, value_error, unicode_error) = unsafe {
            (
                ffi::PyExc_TypeError,
                ffi::PyExc_OverflowError,
                ffi::PyExc_ValueError,
                ffi::PyExc_UnicodeError,
            )
        };
        let cases: [(&str, Refusal, *mut ffi::PyObject); 4] = [
            (
                "'x'",
                |o| cast::<i64>(o.as_borrowed()).unwrap_err(),
                type_error,
            ),
            (
                "300",
                |o| cast::<u8>(o.as_borrowed()).unwrap_err(),
                overflow,
            ),
            (
                "[1]",
                |o| cast::<[i64; 2]>(o.as_borrowed()).unwrap_err(),
                value_error,
            ),
            (
                "'\\ud800'",
                |o| cast::<String>(o.as_borrowed()).unwrap_err(),
                unicode_error,
            ),
        ];
        for (expr, refuse, class) in cases {
            let error = refuse(eval(py, expr));
            let exc = error.into_python_exception(py);
            // SAFETY: attached thread state; live objects.
            let matches = unsafe { ffi::PyErr_GivenExceptionMatches(exc.as_ptr(), class) };
            assert_eq!(matches, 1, "{expr}: {}", repr(&exc));
            // SAFETY: attached thread state.
            let pending = unsafe { ffi::PyErr_Occurred() };
            assert!(pending.is_null(), "nothing left pending");
        }
    });
}
