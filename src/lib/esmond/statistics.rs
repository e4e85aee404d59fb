//! Histogram statistics as esmond computes them (`statistics` summaries): minimum, maximum,
//! mean, median, mode, percentiles by the NIST method, population variance and standard
//! deviation, over the buckets weighted by their counts.

use serde_json::{json, Map, Value};

/// Bucket-wise sum of histograms (counts per bucket string).
pub fn merge(histograms: impl IntoIterator<Item = Value>) -> Map<String, Value> {
    let mut merged = Map::new();
    for histogram in histograms {
        if let Value::Object(counts) = histogram {
            for (bucket, count) in counts {
                let add = count.as_i64().unwrap_or(0);
                let entry = merged.entry(bucket).or_insert(Value::from(0));
                *entry = Value::from(entry.as_i64().unwrap_or(0).saturating_add(add));
            }
        }
    }
    merged
}

/// The statistics of a histogram; `{}` when a bucket is not a number or it is empty.
pub fn statistics(histogram: &Map<String, Value>) -> Value {
    let mut buckets: Vec<(f64, i64)> = Vec::with_capacity(histogram.len());
    for (bucket, count) in histogram {
        let Ok(value) = bucket.trim().parse::<f64>() else {
            return json!({});
        };
        let count = count.as_i64().unwrap_or(0);
        if count > 0 {
            buckets.push((value, count));
        }
    }
    let total: i64 = buckets.iter().fold(0i64, |sum, b| sum.saturating_add(b.1));
    if total == 0 {
        return json!({});
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = total as f64;
    let mean = buckets.iter().map(|(v, c)| v * *c as f64).sum::<f64>() / n;
    let variance = buckets
        .iter()
        .map(|(v, c)| (v - mean) * (v - mean) * *c as f64)
        .sum::<f64>()
        / n;
    let top = buckets.iter().map(|b| b.1).max().unwrap_or(0);
    let mut mode: Vec<f64> = buckets.iter().filter(|b| b.1 == top).map(|b| b.0).collect();
    mode.sort_by(|a, b| b.total_cmp(a));
    // The k-th (1-based) value in sorted order.
    let nth = |k: i64| -> f64 {
        let mut seen = 0;
        for (value, count) in &buckets {
            seen = i64::saturating_add(seen, *count);
            if seen >= k {
                return *value;
            }
        }
        buckets.last().map_or(0.0, |b| b.0)
    };
    // NIST: rank p(N+1); below 1 the minimum, at or above N the maximum, else interpolate.
    let percentile = |p: f64| -> f64 {
        let rank = p * (n + 1.0);
        if rank < 1.0 {
            return nth(1);
        }
        if rank >= n {
            return nth(total);
        }
        let k = rank.floor() as i64;
        let d = rank - k as f64;
        let (low, high) = (nth(k), nth(k + 1));
        low + d * (high - low)
    };
    json!({
        "minimum": buckets[0].0,
        "maximum": buckets[buckets.len() - 1].0,
        "mean": mean,
        "median": percentile(0.5),
        "mode": mode,
        "percentile-25": percentile(0.25),
        "percentile-75": percentile(0.75),
        "percentile-95": percentile(0.95),
        "variance": variance,
        "standard-deviation": variance.sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_esmond_test_oracle() {
        let merged = merge([
            json!({"41.00": 98, "41.10": 2}),
            json!({"41.10": 96, "41.20": 3, "50.0": 1}),
        ]);
        assert_eq!(
            Value::Object(merged.clone()),
            json!({"41.10": 98, "41.00": 98, "50.0": 1, "41.20": 3})
        );
        let stats = statistics(&merged);
        let close = |key: &str, want: f64| {
            let got = stats[key].as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "{key}: {got} vs {want}");
        };
        close("standard-deviation", 0.6333174559413313);
        close("median", 41.1);
        close("maximum", 50.0);
        close("minimum", 41.0);
        close("percentile-75", 41.1);
        close("percentile-25", 41.0);
        close("percentile-95", 41.1);
        close("variance", 0.40109100000000003);
        close("mean", 41.097);
        assert_eq!(stats["mode"], json!([41.1, 41.0]));
        assert_eq!(statistics(&merge([json!({"x": 1})])), json!({}));
    }
}
