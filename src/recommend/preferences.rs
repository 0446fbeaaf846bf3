//! Zero-party preferences: what a shopper told the shop, stored in the
//! user's `attributes.preferences`, acting as default filters on that
//! user's recommendations. A field the request's own filter already
//! constrains is left to the request (an explicit filter wins).
//!
//! Shape: `{"categories": [..], "exclude_categories": [..], "brands": [..],
//! "min_price": 10, "max_price": 200}`, every key optional. It is checked
//! when the user is written, so a stored one always parses.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::index::filter::{Bound, Condition, Filter, PriceRange, StringCondition};

/// Parsed preferences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preferences {
    pub categories: Vec<String>,
    pub exclude_categories: Vec<String>,
    pub brands: Vec<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
}

fn strings(field: &str, value: &Value) -> Result<Vec<String>> {
    let Value::Array(items) = value else {
        return Err(Error::invalid(field, "must be an array of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(Error::invalid(
                format!("{field}[{i}]"),
                "must be a non-empty string",
            )),
        })
        .collect()
}

fn price(field: &str, value: &Value) -> Result<f64> {
    value
        .as_f64()
        .filter(|p| p.is_finite() && *p >= 0.0)
        .ok_or_else(|| Error::invalid(field, "must be a finite number >= 0"))
}

impl Preferences {
    /// The preferences in `attributes`, if any; errors name fields under
    /// `prefix` (the JSON path of `attributes`).
    pub fn from_attributes(prefix: &str, attributes: &Map<String, Value>) -> Result<Option<Self>> {
        let Some(raw) = attributes.get("preferences") else {
            return Ok(None);
        };
        let at = |f: &str| format!("{prefix}.preferences.{f}");
        let Value::Object(map) = raw else {
            return Err(Error::invalid(
                format!("{prefix}.preferences"),
                "must be an object",
            ));
        };
        let mut p = Preferences::default();
        for (key, value) in map {
            match key.as_str() {
                "categories" => p.categories = strings(&at(key), value)?,
                "exclude_categories" => p.exclude_categories = strings(&at(key), value)?,
                "brands" => p.brands = strings(&at(key), value)?,
                "min_price" => p.min_price = Some(price(&at(key), value)?),
                "max_price" => p.max_price = Some(price(&at(key), value)?),
                other => {
                    return Err(Error::invalid(
                        at(other),
                        "unknown preference; expected categories, exclude_categories, brands, min_price or max_price",
                    ))
                }
            }
        }
        if let (Some(lo), Some(hi)) = (p.min_price, p.max_price) {
            if lo > hi {
                return Err(Error::invalid(at("min_price"), "must not exceed max_price"));
            }
        }
        Ok(Some(p))
    }

    /// `filter` plus these preferences on the fields it leaves open.
    pub fn apply(&self, mut filter: Filter) -> Filter {
        let has = |f: &Filter, pred: fn(&Condition) -> bool| f.conditions.iter().any(pred);
        let sets_category = has(&filter, |c| {
            matches!(c, Condition::Category(_) | Condition::CategoryUnset)
        });
        let sets_brand = has(&filter, |c| matches!(c, Condition::Brand(_)));
        let sets_price = has(&filter, |c| matches!(c, Condition::Price(_)));
        if !sets_category {
            if !self.categories.is_empty() {
                filter = filter.and(Condition::Category(StringCondition::In(
                    self.categories.clone(),
                )));
            }
            if !self.exclude_categories.is_empty() {
                filter = filter.and(Condition::Category(StringCondition::NotIn(
                    self.exclude_categories.clone(),
                )));
            }
        }
        if !sets_brand && !self.brands.is_empty() {
            filter = filter.and(Condition::Brand(StringCondition::In(self.brands.clone())));
        }
        if !sets_price && (self.min_price.is_some() || self.max_price.is_some()) {
            filter = filter.and(Condition::Price(PriceRange {
                low: self.min_price.map(|value| Bound {
                    value,
                    inclusive: true,
                }),
                high: self.max_price.map(|value| Bound {
                    value,
                    inclusive: true,
                }),
            }));
        }
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn preferences_parse_and_name_bad_fields() {
        let p = Preferences::from_attributes(
            "users[0].attributes",
            &attrs(json!({"preferences": {"categories": ["Phones"], "max_price": 100}})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.categories, ["Phones"]);
        assert_eq!(p.max_price, Some(100.0));
        assert_eq!(
            Preferences::from_attributes("a", &attrs(json!({"x": 1}))).unwrap(),
            None
        );
        for (bad, field) in [
            (json!({"preferences": 3}), "a.preferences"),
            (
                json!({"preferences": {"brands": "x"}}),
                "a.preferences.brands",
            ),
            (
                json!({"preferences": {"brands": [1]}}),
                "a.preferences.brands[0]",
            ),
            (
                json!({"preferences": {"min_price": -1}}),
                "a.preferences.min_price",
            ),
            (
                json!({"preferences": {"colour": "red"}}),
                "a.preferences.colour",
            ),
            (
                json!({"preferences": {"min_price": 5, "max_price": 1}}),
                "a.preferences.min_price",
            ),
        ] {
            match Preferences::from_attributes("a", &attrs(bad)) {
                Err(Error::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_explicit_filter_wins_field_by_field() {
        let p = Preferences {
            categories: vec!["Phones".into()],
            brands: vec!["Acme".into()],
            min_price: Some(10.0),
            ..Default::default()
        };
        let explicit = Filter::default().and(Condition::Category(StringCondition::In(vec![
            "Chairs".into(),
        ])));
        let f = p.apply(explicit.clone());
        assert_eq!(f.conditions.len(), 3);
        assert_eq!(f.conditions[0], explicit.conditions[0]);
        assert!(matches!(f.conditions[1], Condition::Brand(_)));
        assert!(matches!(f.conditions[2], Condition::Price(_)));
    }
}
