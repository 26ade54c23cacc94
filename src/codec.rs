//! The compact binary encoding of serialisable state (checkpoints): serde's data model
//! in postcard's encoding (little-endian floats, variable-length integers, no field
//! names), so every part of a checkpoint is encoded the same way.
//!
//! ```
//! let v = vec![1.5f32, -2.0];
//! let bytes = bamdp::codec::encode(&v);
//! assert_eq!(bamdp::codec::decode::<Vec<f32>>(&bytes, "v").unwrap(), v);
//! assert!(bamdp::codec::decode::<Vec<f32>>(&bytes[..3], "v").is_err());
//! ```

use crate::error::StateError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes `value`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("state serialises")
}

/// [`encode`] into a buffer of `capacity` bytes reserved up front (large states:
/// no regrowth copies).
pub fn encode_with_capacity<T: Serialize>(value: &T, capacity: usize) -> Vec<u8> {
    postcard::to_extend(value, Vec::with_capacity(capacity)).expect("state serialises")
}

/// Decodes what [`encode`] wrote (all of `bytes`); `what` names the part in errors.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StateError> {
    let fail = |detail: String| StateError::Decode {
        what: what.to_string(),
        detail,
    };
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| fail(e.to_string()))?;
    if !rest.is_empty() {
        return Err(fail(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Bytes that encode as one length-prefixed block rather than one element per byte
/// (a nested encoded state inside a checkpoint: copied, not walked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}
