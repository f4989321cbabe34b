//! Errors of the internals runtime, as data whose messages state the rule, the origin and
//! the way out.

use bindery_capsule::CapsuleError;

/// Why internals could not be handed out, or a registration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InternalsError {
    /// Content would be created a second time for an interpreter that already had it and
    /// has since released it. Under the default [`RecreationPolicy::Fatal`] this is a fatal
    /// error instead.
    ///
    /// [`RecreationPolicy::Fatal`]: crate::RecreationPolicy::Fatal
    #[error(
        "bindery: refusing to re-create the {what} of interpreter {interpreter_id} (key \
         `{key}`): they were created in this interpreter before and have been released since, \
         and a second, empty registry would silently forget every registered type.\n\
         likely cause: a finaliser or garbage-collector callback (tp_traverse, tp_clear, \
         __del__, a weakref or atexit callback) running after the interpreter released its \
         internals during shutdown.\n\
         way out: release the objects that need bindery before the interpreter exits (for \
         example from an atexit handler registered after importing the module); if the \
         traceback shows bindery's own code, report it to bindery with that traceback."
    )]
    Recreated {
        /// "internals" or "local internals".
        what: &'static str,
        /// `PyInterpreterState_GetID` of the interpreter.
        interpreter_id: i64,
        /// The state-dict key.
        key: &'static str,
    },

    /// The state dict could not be read, or holds something else under the key.
    #[error("bindery: cannot get the {what} of interpreter {interpreter_id}: {source}")]
    Capsule {
        /// "internals" or "local internals".
        what: &'static str,
        /// `PyInterpreterState_GetID` of the interpreter.
        interpreter_id: i64,
        /// What the capsule layer reported.
        #[source]
        source: CapsuleError,
    },

    /// A type key is registered already, with another Python type object.
    #[error(
        "bindery: cannot register Rust type `{rust_name}` under type key `{type_key}`: module \
         `{module}` registered that key with another Python type in this interpreter. Two \
         modules that share internals must not bind the same Rust type twice: bind it in one \
         module and import that module from the other, or register one of them as \
         module-local"
    )]
    AlreadyRegistered {
        /// The stable type key.
        type_key: String,
        /// `std::any::type_name` of the type being registered.
        rust_name: &'static str,
        /// The module that registered the key first.
        module: String,
    },
}
