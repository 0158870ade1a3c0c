//! Pricing: the cost in USD of an API call's tokens, from the price table kept
//! in the repository (`pricing.toml`, embedded at build time, with its source
//! and date), optionally overridden entry by entry by a user file of the same
//! shape. An unknown model has no cost (`None`), never a made-up one.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::event::Tokens;
use crate::error::{AggregatorError, Result};

/// The table shipped with the program (see its header for source and date).
pub const BUILTIN_PRICING: &str = include_str!("../../pricing.toml");

/// Prices of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrices {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
}

impl ModelPrices {
    /// The cost of `tokens` at these prices.
    pub fn cost_usd(&self, t: &Tokens) -> f64 {
        let one_hour = t.cache_creation_1h.clamp(0, t.cache_creation.max(0));
        let five_minutes = t.cache_creation.max(0) - one_hour;
        (t.input as f64 * self.input
            + t.output as f64 * self.output
            + five_minutes as f64 * self.cache_write_5m
            + one_hour as f64 * self.cache_write_1h
            + t.cache_read as f64 * self.cache_read)
            / 1_000_000.0
    }
}

/// A price table: model base name → prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PricingTable {
    models: BTreeMap<String, ModelPrices>,
}

/// The file shape: `[models.<name>]` with the five prices, each optional so
/// that a user file may change one price of a known model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingFile {
    #[serde(default)]
    models: BTreeMap<String, PartialPrices>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialPrices {
    input: Option<f64>,
    output: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    cache_read: Option<f64>,
}

impl PricingTable {
    /// The table shipped with the program.
    pub fn builtin() -> &'static PricingTable {
        static TABLE: OnceLock<PricingTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            // The embedded file is part of the source; a test parses it, so
            // this cannot fail in a built program.
            PricingTable::parse(BUILTIN_PRICING).expect("the embedded pricing.toml parses")
        })
    }

    /// Parses a complete table (every model with all five prices).
    pub fn parse(text: &str) -> Result<PricingTable> {
        let mut table = PricingTable::default();
        table.merge_str(text, "pricing table")?;
        Ok(table)
    }

    /// Lays the entries of `text` over this table. On error the table is
    /// left unchanged.
    pub fn merge_str(&mut self, text: &str, origin: &str) -> Result<()> {
        let file: PricingFile =
            toml::from_str(text).map_err(|e| AggregatorError::Config(format!("{origin}: {e}")))?;
        let mut merged = self.models.clone();
        for (name, p) in file.models {
            let key = base_model_name(&name);
            let old = merged.get(&key).copied();
            let pick = |new: Option<f64>, old: Option<f64>, field: &str| -> Result<f64> {
                let v = new.or(old).ok_or_else(|| {
                    AggregatorError::Config(format!(
                        "{origin}: model {name}: missing price '{field}' (USD per million tokens)"
                    ))
                })?;
                if !v.is_finite() || v < 0.0 {
                    return Err(AggregatorError::Config(format!(
                        "{origin}: model {name}: price '{field}' must be a number >= 0, not {v}"
                    )));
                }
                Ok(v)
            };
            let prices = ModelPrices {
                input: pick(p.input, old.map(|o| o.input), "input")?,
                output: pick(p.output, old.map(|o| o.output), "output")?,
                cache_write_5m: pick(
                    p.cache_write_5m,
                    old.map(|o| o.cache_write_5m),
                    "cache_write_5m",
                )?,
                cache_write_1h: pick(
                    p.cache_write_1h,
                    old.map(|o| o.cache_write_1h),
                    "cache_write_1h",
                )?,
                cache_read: pick(p.cache_read, old.map(|o| o.cache_read), "cache_read")?,
            };
            merged.insert(key, prices);
        }
        self.models = merged;
        Ok(())
    }

    /// The prices of `model` (any spelling [`base_model_name`] understands).
    pub fn prices(&self, model: &str) -> Option<&ModelPrices> {
        self.models.get(&base_model_name(model))
    }

    /// The cost of `tokens` spent on `model`; `None` for an unknown model.
    pub fn cost_usd(&self, model: &str, tokens: &Tokens) -> Option<f64> {
        self.prices(model).map(|p| p.cost_usd(tokens))
    }
}

/// [`PricingTable::cost_usd`] with the built-in table.
pub fn cost_usd(model: &str, tokens: &Tokens) -> Option<f64> {
    PricingTable::builtin().cost_usd(model, tokens)
}

/// The name a model is priced under: lower case, without a date suffix
/// (`claude-sonnet-4-5-20250929`), `-latest`, a `[1m]` context marker, a
/// Vertex `@date` or Bedrock decorations (`us.anthropic.…-v1:0`).
pub fn base_model_name(model: &str) -> String {
    let mut s = model.trim().to_ascii_lowercase();
    if let Some(i) = s.find('[') {
        s.truncate(i);
    }
    if let Some(i) = s.find('@') {
        s.truncate(i);
    }
    // Bedrock: "anthropic.claude-…" possibly behind a region prefix ("us.").
    if let Some(i) = s.find("anthropic.") {
        s = s[i + "anthropic.".len()..].to_owned();
    }
    // Bedrock version: "-v1:0", "-v2".
    if let Some(i) = s.rfind("-v") {
        let tail = &s[i + 2..];
        if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit() || c == ':') {
            s.truncate(i);
        }
    }
    if let Some(stripped) = s.strip_suffix("-latest") {
        s = stripped.to_owned();
    }
    // Date suffix: "-YYYYMMDD".
    if s.len() > 9 && s.is_char_boundary(s.len() - 9) {
        let (head, tail) = s.split_at(s.len() - 9);
        if tail.starts_with('-') && tail[1..].chars().all(|c| c.is_ascii_digit()) {
            s = head.to_owned();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_table_parses_and_prices_sonnet_4_5_at_the_public_rates() {
        let t = PricingTable::builtin();
        let p = t.prices("claude-sonnet-4-5").expect("sonnet 4.5 is priced");
        assert_eq!(
            (
                p.input,
                p.output,
                p.cache_write_5m,
                p.cache_write_1h,
                p.cache_read
            ),
            (3.0, 15.0, 3.75, 6.0, 0.30)
        );
        for m in [
            "claude-opus-4-5",
            "claude-opus-4-1",
            "claude-opus-4",
            "claude-sonnet-4",
            "claude-haiku-4-5",
            "claude-3-7-sonnet",
            "claude-3-5-sonnet",
            "claude-3-5-haiku",
        ] {
            assert!(t.prices(m).is_some(), "{m} is priced");
        }
    }

    #[test]
    fn model_names_match_on_their_base_name() {
        for (raw, base) in [
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-sonnet-4-5", "claude-sonnet-4-5"),
            ("Claude-Sonnet-4-5[1m]", "claude-sonnet-4-5"),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
            ("claude-opus-4-1@20250805", "claude-opus-4-1"),
            (
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "claude-sonnet-4",
            ),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            // Odd input never panics (multi-byte characters near the cuts).
            ("模型-v模型-12345678", "模型-v模型"),
            ("ééééé", "ééééé"),
            ("-v", "-v"),
        ] {
            assert_eq!(base_model_name(raw), base, "{raw}");
        }
        // Opus 4 is not Opus 4.1 nor Opus 4.5: no prefix matching.
        let t = PricingTable::builtin();
        assert_ne!(
            t.prices("claude-opus-4-20250514"),
            t.prices("claude-opus-4-5-20251101")
        );
    }

    #[test]
    fn unknown_models_have_no_cost() {
        let tokens = Tokens {
            input: 10,
            ..Tokens::default()
        };
        assert_eq!(cost_usd("<synthetic>", &tokens), None);
        assert_eq!(cost_usd("gpt-4o", &tokens), None);
        assert_eq!(cost_usd("", &tokens), None);
        assert_eq!(cost_usd("claude-sonnet-9", &tokens), None);
    }

    #[test]
    fn cost_applies_each_kind_at_its_price() {
        let usage = json!({"input_tokens": 1_000_000, "output_tokens": 1_000_000,
            "cache_creation_input_tokens": 3_000_000, "cache_read_input_tokens": 1_000_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 2_000_000, "ephemeral_1h_input_tokens": 1_000_000}});
        let t = Tokens::from_usage(&usage);
        assert_eq!(
            (t.cache_creation, t.cache_creation_1h),
            (3_000_000, 1_000_000)
        );
        let c = cost_usd("claude-sonnet-4-5-20250929", &t).unwrap();
        assert!(
            (c - (3.0 + 15.0 + 2.0 * 3.75 + 6.0 + 0.30)).abs() < 1e-9,
            "{c}"
        );
        // Without the split, every write is a 5-minute write.
        let t = Tokens::from_usage(&json!({"cache_creation_input_tokens": 100}));
        assert_eq!((t.cache_creation, t.cache_creation_1h), (100, 0));
        // A split larger than the total (bad input) never underflows.
        let t = Tokens::from_usage(&json!({"cache_creation_input_tokens": 5,
            "cache_creation": {"ephemeral_1h_input_tokens": 9}}));
        assert_eq!((t.cache_creation, t.cache_creation_1h), (5, 5));
    }

    #[test]
    fn a_user_file_overrides_field_by_field_and_adds_models() {
        let mut t = PricingTable::builtin().clone();
        t.merge_str(
            "[models.claude-sonnet-4-5-20250929]\noutput = 20.0\n\n[models.my-model]\ninput = 1\noutput = 2\ncache_write_5m = 3\ncache_write_1h = 4\ncache_read = 0.5\n",
            "user",
        )
        .unwrap();
        let p = t.prices("claude-sonnet-4-5").unwrap();
        assert_eq!((p.input, p.output), (3.0, 20.0));
        assert_eq!(t.prices("my-model").unwrap().cache_read, 0.5);
        // A new model missing a price, a negative price, an unknown key: refused, table unchanged.
        let before = t.clone();
        for bad in [
            "[models.other]\ninput = 1\n",
            "[models.claude-sonnet-4-5]\ninput = -1\n",
            "[models.claude-sonnet-4-5]\nimput = 1\n",
            "not toml [",
        ] {
            assert!(t.merge_str(bad, "user").is_err(), "{bad}");
            assert_eq!(t, before);
        }
    }
}
