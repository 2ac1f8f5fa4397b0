//! Small serde helpers matching Go's `encoding/json` behaviour.

use serde::{Deserialize, Deserializer};

/// Deserialises `null` as the type's default (Go writes `null` for nil slices and maps).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go's `omitempty` for booleans.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Go's `omitempty` for integers.
pub(crate) fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
