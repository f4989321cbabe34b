//! `bindery_example_features`: every function feature of the facade, exercised by the
//! facade's tests (`tests/py_functions.rs`).

use bindery::{CustomClass, Error, ExceptionClass, Function, ModuleBuilder, ModuleRef};

// ANCHOR: functions
fn greet(name: String, greeting: String, punctuation: Option<String>) -> String {
    format!("{greeting}, {name}{}", punctuation.unwrap_or_default())
}

fn scale(xs: Vec<f64>, factor: f64) -> Vec<f64> {
    xs.into_iter().map(|x| x * factor).collect()
}

fn parse_port(text: String) -> Result<u16, Error> {
    let port: u16 = text.parse().map_err(|_| {
        Error::custom(
            CustomClass { name: "ParseError" },
            format!("not a port: {text:?}"),
        )
    })?;
    if port == 0 {
        return Err(Error::new(ExceptionClass::ValueError, "port 0 is reserved"));
    }
    Ok(port)
}
// ANCHOR_END: functions

fn explode(message: String) -> i64 {
    panic!("{message}")
}

fn nothing() {}

fn interpreter_id() -> i64 {
    bindery::Python::with_attached(|py| py.interpreter_id()).unwrap_or(-1)
}

fn six(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64) -> i64 {
    a + b + c + d + e + f
}

fn add_constants(m: &ModuleRef<'_>) -> Result<(), Error> {
    m.add("ANSWER", 42_i64)
}

// ANCHOR: build
fn build(m: &mut ModuleBuilder) {
    m.doc("bindery facade features, for tests.");
    m.function(
        Function::new("greet", greet)
            .arg("name")
            .arg_default("greeting", "Hello".to_string())
            .arg_optional("punctuation")
            .doc("Greet someone."),
    );
    m.function(
        Function::new("scale", scale)
            .arg("xs")
            .arg_default("factor", 2.0)
            .doc("Scale a list."),
    );
    m.function(
        Function::new("parse_port", parse_port)
            .arg("text")
            .doc("Parse a TCP port."),
    );
    m.function(
        Function::new("explode", explode)
            .arg("message")
            .doc("Panic with a message."),
    );
    m.function(Function::new("nothing", nothing).doc("Return None."));
    m.function(
        Function::new("interpreter_id", interpreter_id).doc("The current interpreter's ID."),
    );
    m.function(
        Function::new("six", six)
            .arg("a")
            .arg("b")
            .arg("c")
            .arg("d")
            .arg("e")
            .arg("f"),
    );
    let offset = 100_i64;
    m.function(
        Function::new("add_offset", move |x: i64| x + offset)
            .arg("x")
            .doc("x + 100 (a capturing closure)."),
    );
    m.exception(
        "ParseError",
        ExceptionClass::ValueError,
        "Input could not be parsed.",
    );
    m.on_exec(add_constants);
}

bindery::module!(bindery_example_features, build);
// ANCHOR_END: build
