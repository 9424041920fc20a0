//! Reading a call's parameters the way an appliance does: the exact count, each of its
//! type, or a fault — so a client that sends the wrong shape cannot pass by accident.

use std::collections::BTreeMap;

use dxr::{Fault, Value};

/// XML-RPC's "invalid method parameters".
pub const FAULT_BAD_PARAMS: i32 = -32602;

pub fn bad(message: impl Into<String>) -> Fault {
    Fault::new(FAULT_BAD_PARAMS, message.into())
}

pub struct Params<'a> {
    method: &'a str,
    values: &'a [Value],
}

impl<'a> Params<'a> {
    /// The parameters of `method`, which takes exactly `count`.
    pub fn exactly(method: &'a str, values: &'a [Value], count: usize) -> Result<Self, Fault> {
        if values.len() != count {
            return Err(bad(format!(
                "{method} takes {count} parameters, got {}",
                values.len()
            )));
        }
        Ok(Params { method, values })
    }

    fn wrong(&self, index: usize, wanted: &str) -> Fault {
        bad(format!(
            "{}: parameter {index} must be {wanted}",
            self.method
        ))
    }

    pub fn string(&self, index: usize) -> Result<&'a str, Fault> {
        match &self.values[index] {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(index, "a string")),
        }
    }

    pub fn int(&self, index: usize) -> Result<i32, Fault> {
        match &self.values[index] {
            Value::Integer(n) => Ok(*n),
            _ => Err(self.wrong(index, "an integer")),
        }
    }

    pub fn structure(&self, index: usize) -> Result<&'a BTreeMap<String, Value>, Fault> {
        match &self.values[index] {
            Value::Struct(fields) => Ok(fields),
            _ => Err(self.wrong(index, "a struct")),
        }
    }

    pub fn array(&self, index: usize) -> Result<&'a [Value], Fault> {
        match &self.values[index] {
            Value::Array(items) => Ok(items),
            _ => Err(self.wrong(index, "an array")),
        }
    }
}

/// A text member of a struct.
pub fn member_text<'v>(fields: &'v BTreeMap<String, Value>, name: &str) -> Result<&'v str, Fault> {
    match fields.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(format!("{name} must be a string"))),
        None => Err(bad(format!("{name} is required"))),
    }
}

pub fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

pub fn structure(fields: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Struct(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A listing answer: `{items, count}`.
pub fn listing(items: Vec<Value>) -> Value {
    let count = items.len() as i32;
    structure([
        ("items", Value::Array(items)),
        ("count", Value::Integer(count)),
    ])
}
