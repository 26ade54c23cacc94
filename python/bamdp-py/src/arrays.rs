//! Reading NumPy arrays from Python arguments with the CLI's error messages: the dtype
//! and shape are checked here, and C-contiguous arrays of the right dtype are read in
//! place (no copy).

use crate::errors::invalid;
use numpy::{
    Element, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

/// A description of an argument's value for error messages: "float32 array of shape (3, 2)".
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => format!(
            "{} array of shape {:?}",
            a.dtype()
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "?".into()),
            shape_text(a.shape())
        ),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into()),
    }
}

/// A shape as Python prints it: `(3,)`, `(3, 2)`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The dtype name of a NumPy array argument as `str(dtype)` gives it ("float32",
/// "int64", "bool"; None for other objects).
pub fn dtype_name(obj: &Bound<'_, PyAny>) -> Option<String> {
    obj.cast::<PyUntypedArray>()
        .ok()
        .and_then(|a| a.dtype().str().ok().map(|s| s.to_string()))
}

/// The element types the bindings read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    I32,
    I64,
    F32,
    F64,
}

/// The element type of a NumPy array argument, by type checks (no Python calls).
pub fn array_kind(obj: &Bound<'_, PyAny>) -> Option<Kind> {
    if obj.cast::<PyArrayDyn<f32>>().is_ok() {
        Some(Kind::F32)
    } else if obj.cast::<PyArrayDyn<i64>>().is_ok() {
        Some(Kind::I64)
    } else if obj.cast::<PyArrayDyn<f64>>().is_ok() {
        Some(Kind::F64)
    } else if obj.cast::<PyArrayDyn<i32>>().is_ok() {
        Some(Kind::I32)
    } else {
        None
    }
}

/// `obj` as a read-only array of `T` whose shape `check` accepts; `key` and `want` name
/// the argument and the expected form in the error.
pub fn read<'py, T: Element + Copy>(
    obj: &Bound<'py, PyAny>,
    key: &str,
    want: &str,
    check: impl Fn(&[usize]) -> bool,
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let bad = || invalid(key, &describe(obj), want);
    let arr = obj.cast::<PyArrayDyn<T>>().map_err(|_| bad())?;
    if !check(arr.shape()) {
        return Err(bad());
    }
    arr.try_readonly().map_err(|_| {
        invalid(
            key,
            "an array borrowed mutably elsewhere",
            "an array not being written",
        )
    })
}

/// The elements of `a` in C order, borrowed when contiguous, else copied.
pub fn c_order<'a, T: Element + Copy>(
    a: &'a PyReadonlyArrayDyn<'_, T>,
) -> std::borrow::Cow<'a, [T]> {
    match a.as_slice() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// A float array of `rows x width` values (shape `(rows, width)`, or `(rows,)` when
/// `width` is 1) as f32: float32 read in place when contiguous, float64 converted.
pub fn f32_rows(
    obj: &Bound<'_, PyAny>,
    key: &str,
    rows: usize,
    width: usize,
) -> PyResult<Vec<f32>> {
    let want = if width == 1 {
        format!("a float32 array of shape ({rows},)")
    } else {
        format!("a float32 array of shape ({rows}, {width})")
    };
    let shape_ok = |s: &[usize]| s == [rows, width] || (width == 1 && s == [rows]);
    match dtype_name(obj).as_deref() {
        Some("float32") => Ok(c_order(&read::<f32>(obj, key, &want, shape_ok)?).into_owned()),
        Some("float64") => Ok(c_order(&read::<f64>(obj, key, &want, shape_ok)?)
            .iter()
            .map(|&v| v as f32)
            .collect()),
        _ => Err(invalid(key, &describe(obj), &want)),
    }
}

/// A boolean array of shape `(rows,)`.
pub fn bool_rows(obj: &Bound<'_, PyAny>, key: &str, rows: usize) -> PyResult<Vec<bool>> {
    let want = format!("a bool array of shape ({rows},)");
    match dtype_name(obj).as_deref() {
        Some("bool") => Ok(c_order(&read::<bool>(obj, key, &want, |s| s == [rows])?).into_owned()),
        _ => Err(invalid(key, &describe(obj), &want)),
    }
}
