//! The filter: a conjunction of conditions on an item's fields, in domain
//! form (the API parses JSON into it; `recommend` adds conditions of its
//! own, e.g. upsell's price band, by pushing more conditions).

use serde_json::Value;

/// Membership of a single-valued string field.
#[derive(Debug, Clone, PartialEq)]
pub enum StringCondition {
    /// The field is set and equals one of these.
    In(Vec<String>),
    /// The field is unset or equals none of these.
    NotIn(Vec<String>),
}

/// Conditions on the tag set.
#[derive(Debug, Clone, PartialEq)]
pub enum TagCondition {
    /// The item has at least one of these tags.
    Any(Vec<String>),
    /// The item has every one of these tags.
    All(Vec<String>),
}

/// One side of a price range: the bound and whether it is inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// A price interval; items without a price never match one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PriceRange {
    pub low: Option<Bound>,
    pub high: Option<Bound>,
}

impl PriceRange {
    pub fn contains(&self, price: f64) -> bool {
        let above = match self.low {
            None => true,
            Some(b) if b.inclusive => price >= b.value,
            Some(b) => price > b.value,
        };
        let below = match self.high {
            None => true,
            Some(b) if b.inclusive => price <= b.value,
            Some(b) => price < b.value,
        };
        above && below
    }
}

/// A scalar attribute value, compared by equality. Numbers compare as f64,
/// so `1` and `1.0` are equal.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    String(String),
    Number(f64),
    Bool(bool),
}

impl Scalar {
    /// The scalar a JSON value holds, if it is one.
    pub fn from_json(value: &Value) -> Option<Scalar> {
        match value {
            Value::String(s) => Some(Scalar::String(s.clone())),
            Value::Number(n) => n.as_f64().map(Scalar::Number),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// A canonical string used as the attribute index key.
    pub fn index_key(&self) -> String {
        match self {
            Scalar::String(s) => format!("s:{s}"),
            // `0.0 == -0.0`: fold the sign of zero so equal numbers share a key.
            Scalar::Number(n) => format!("n:{}", if *n == 0.0 { 0.0 } else { *n }),
            Scalar::Bool(b) => format!("b:{b}"),
        }
    }

    /// Whether attribute value `value` (a scalar, or an array of scalars
    /// where any element may match) equals this scalar.
    pub fn matches(&self, value: &Value) -> bool {
        match value {
            Value::Array(items) => items
                .iter()
                .any(|v| Scalar::from_json(v).as_ref() == Some(self)),
            other => Scalar::from_json(other).as_ref() == Some(self),
        }
    }
}

/// One condition of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Category(StringCondition),
    /// The item has no category (upsell from an item without one).
    CategoryUnset,
    Brand(StringCondition),
    Price(PriceRange),
    /// Inclusive tier interval.
    Tier {
        low: u8,
        high: u8,
    },
    InStock(bool),
    Tags(TagCondition),
    ExcludeIds(Vec<String>),
    Attribute {
        key: String,
        value: Scalar,
    },
}

/// All conditions must hold. The empty filter matches every item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub conditions: Vec<Condition>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Adds a condition (AND).
    pub fn and(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }
}
