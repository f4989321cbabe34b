//! The slow path of a call: matching keyword arguments to parameters, filling in defaults,
//! and the errors CPython users expect (too many arguments, unknown or repeated keyword,
//! missing argument), each a `TypeError` naming the function and the parameter. Also the
//! signature line that `__text_signature__`, `help()` and `inspect.signature` read.

use bindery_capsule::{Owned, Python};
use bindery_cast::CastError;
use pyo3_ffi as ffi;
use smallvec::SmallVec;

use crate::error::Error;
use crate::function::FunctionData;

/// Puts every argument of a call in its parameter's slot, making defaults for omitted ones
/// (kept alive in `defaults` until the call returns).
///
/// # Safety
/// `args` holds `nargs` positional arguments followed by one value per name in `kwnames`
/// (a tuple of str, or null): CPython's vectorcall contract.
pub(crate) unsafe fn gather<'py>(
    py: Python<'py>,
    data: &FunctionData,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
    defaults: &mut SmallVec<[Owned<'py>; 4]>,
) -> Result<SmallVec<[*mut ffi::PyObject; 8]>, Error> {
    let params = &data.function.params;
    let name = &data.display;
    if nargs > params.len() {
        return Err(Error::type_error(format!(
            "{name} takes {} positional argument{} but {nargs} were given",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
        )));
    }
    let mut slots: SmallVec<[*mut ffi::PyObject; 8]> =
        SmallVec::from_elem(std::ptr::null_mut(), params.len());
    for (i, slot) in slots.iter_mut().enumerate().take(nargs) {
        // SAFETY: i < nargs (contract).
        *slot = unsafe { *args.add(i) };
    }
    if !kwnames.is_null() {
        // SAFETY: `kwnames` is a tuple (contract).
        let nkw = unsafe { ffi::PyTuple_GET_SIZE(kwnames) } as usize;
        for k in 0..nkw {
            // SAFETY: k < len(kwnames); borrowed items of a live tuple.
            let key = unsafe { ffi::PyTuple_GET_ITEM(kwnames, k as ffi::Py_ssize_t) };
            let key_text = str_of(py, key)?;
            let Some(index) = params.iter().position(|p| p.name == key_text) else {
                return Err(Error::type_error(format!(
                    "{name} got an unexpected keyword argument '{key_text}'"
                )));
            };
            if !slots[index].is_null() {
                return Err(Error::type_error(format!(
                    "{name} got multiple values for argument '{key_text}'"
                )));
            }
            // SAFETY: keyword values follow the positional ones (contract).
            slots[index] = unsafe { *args.add(nargs + k) };
        }
    }
    for (index, param) in params.iter().enumerate() {
        if !slots[index].is_null() {
            continue;
        }
        match &param.default {
            Some(make) => {
                let object = make(py).map_err(Error::from)?;
                // SAFETY: `make` returns a new reference.
                let object = unsafe { Owned::from_owned_ptr(py, object) }
                    .ok_or_else(|| Error::from(CastError::fetch(py)))?;
                slots[index] = object.as_ptr();
                defaults.push(object);
            }
            None => {
                return Err(Error::type_error(format!(
                    "{name} missing required argument '{}' (pos {})",
                    param.name,
                    index + 1
                )));
            }
        }
    }
    Ok(slots)
}

/// The text of a `str` object (a keyword name).
fn str_of(py: Python<'_>, object: *mut ffi::PyObject) -> Result<String, Error> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: attached thread state; `object` is a live keyword name.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(object, &mut size) };
    if data.is_null() {
        return Err(CastError::fetch(py).into());
    }
    // SAFETY: CPython keeps the UTF-8 buffer alive with the str; `size` bytes of UTF-8.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) };
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The signature line CPython turns into `__text_signature__`: `add($module, a, b=0)`.
/// `reprs[i]` is the Python repr of parameter i's default, if it has one.
pub(crate) fn signature(name: &str, params: &[(String, Option<String>)]) -> String {
    let mut out = format!("{name}($module");
    for (param, default) in params {
        out.push_str(", ");
        out.push_str(param);
        if let Some(repr) = default {
            out.push('=');
            out.push_str(repr);
        }
    }
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signature_lists_parameters_and_defaults() {
        let params = vec![
            ("a".to_string(), None),
            ("b".to_string(), Some("0".to_string())),
        ];
        assert_eq!(signature("add", &params), "add($module, a, b=0)");
        assert_eq!(signature("f", &[]), "f($module)");
    }
}
