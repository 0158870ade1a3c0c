//! Cost of tokens from the pricing table (placeholder: replaced by the table in `pricing.toml`).

use super::event::Tokens;

/// USD per million tokens: input, output, 5-minute cache write, 1-hour cache write, cache read.
fn prices(model: &str) -> Option<[f64; 5]> {
    match model {
        "claude-sonnet-4-5" => Some([3.0, 15.0, 3.75, 6.0, 0.30]),
        _ => None,
    }
}

/// The cost of `tokens` used with `model`; `None` for a model without a price.
pub fn cost_usd(model: &str, tokens: &Tokens) -> Option<f64> {
    let p = prices(model)?;
    let five_min = tokens.cache_creation - tokens.cache_creation_1h;
    Some(
        (tokens.input as f64 * p[0]
            + tokens.output as f64 * p[1]
            + five_min as f64 * p[2]
            + tokens.cache_creation_1h as f64 * p[3]
            + tokens.cache_read as f64 * p[4])
            / 1e6,
    )
}
