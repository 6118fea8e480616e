//! A strict parser of the text format, so that the tests read the output
//! back the way a scraper does and fail on anything the format forbids.
//!
//! It rejects a sample before its family's `# TYPE` line, a family split in
//! two, a duplicate series, an unknown escape, and a histogram without
//! `+Inf` or with decreasing buckets. To catch sloppy output, it also
//! rejects what scrapers tolerate: a family without `# HELP`, blank lines,
//! and a missing final line feed.

use std::collections::HashSet;

/// A parsed family: its `# HELP` text unescaped, its type, and its samples
/// in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: String,
    pub samples: Vec<Sample>,
}

/// A parsed sample line, with label values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// Returns the value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Parses a whole scrape.
///
/// # Errors
///
/// The first problem, with its line number.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a line feed".to_owned());
    }

    let mut families: Vec<Family> = Vec::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut series: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| format!("line {number}: {message}: {line:?}");
        if line.is_empty() {
            return Err(fail("blank line".to_owned()));
        }

        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            check_metric_name(name).map_err(&fail)?;
            if !finished.insert(name.to_owned()) {
                return Err(fail(format!("family {name} appears twice")));
            }
            families.push(Family {
                name: name.to_owned(),
                help: unescape(help, false).map_err(&fail)?,
                kind: String::new(),
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without a type".to_owned()))?;
            let current = families
                .last_mut()
                .filter(|family| family.name == name)
                .ok_or_else(|| fail("TYPE without HELP just before it".to_owned()))?;
            if !current.kind.is_empty() || !current.samples.is_empty() {
                return Err(fail("TYPE after the family's first sample".to_owned()));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(fail(format!("unknown type {kind}")));
            }
            current.kind = kind.to_owned();
        } else if line.starts_with('#') {
            // A plain comment.
        } else {
            let sample = parse_sample(line).map_err(&fail)?;
            let current = families
                .last_mut()
                .ok_or_else(|| fail("sample before any family".to_owned()))?;
            if current.kind.is_empty() {
                return Err(fail("sample before its family's TYPE line".to_owned()));
            }
            if !belongs_to(&sample.name, &current.name, &current.kind) {
                return Err(fail(format!(
                    "sample outside its family; the current family is {}",
                    current.name
                )));
            }
            let mut key_labels = sample.labels.clone();
            key_labels.sort();
            if !series.insert((sample.name.clone(), key_labels)) {
                return Err(fail("duplicate series".to_owned()));
            }
            current.samples.push(sample);
        }
    }

    for family in &families {
        if family.kind.is_empty() {
            return Err(format!("family {} has HELP but no TYPE", family.name));
        }
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
    }
    Ok(families)
}

/// Returns whether a sample called `sample` belongs to the family `family`
/// of type `kind`.
fn belongs_to(sample: &str, family: &str, kind: &str) -> bool {
    if kind != "histogram" {
        return sample == family;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .any(|suffix| sample.strip_suffix(suffix) == Some(family))
}

/// Checks every series of a histogram: `le` buckets in increasing order and
/// cumulative, the last one `+Inf` and equal to `_count`, and a `_sum`.
fn check_histogram(family: &Family) -> Result<(), String> {
    let name = &family.name;
    let without_le = |sample: &Sample| -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(key, _)| key != "le")
            .cloned()
            .collect();
        labels.sort();
        labels
    };

    let mut keys: Vec<Vec<(String, String)>> = Vec::new();
    for sample in &family.samples {
        let key = without_le(sample);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for key in keys {
        let in_series = |suffix: &str| -> Vec<&Sample> {
            family
                .samples
                .iter()
                .filter(|s| s.name == format!("{name}{suffix}") && without_le(s) == key)
                .collect()
        };
        let buckets = in_series("_bucket");
        let mut previous_bound = f64::NEG_INFINITY;
        let mut previous_count = 0.0;
        for bucket in &buckets {
            let bound: f64 = match bucket.label("le") {
                Some("+Inf") => f64::INFINITY,
                Some(text) => parse_value(text)?,
                None => return Err(format!("{name}_bucket {key:?} has no le label")),
            };
            if bound <= previous_bound {
                return Err(format!("{name} {key:?}: le {bound} after {previous_bound}"));
            }
            if bucket.value < previous_count {
                return Err(format!(
                    "{name} {key:?}: bucket counts decrease at le {bound}"
                ));
            }
            previous_bound = bound;
            previous_count = bucket.value;
        }
        if previous_bound != f64::INFINITY {
            return Err(format!("{name} {key:?}: the last bucket is not +Inf"));
        }
        let count = in_series("_count");
        if count.len() != 1 || count[0].value != previous_count {
            return Err(format!(
                "{name} {key:?}: _count differs from the +Inf bucket"
            ));
        }
        if in_series("_sum").len() != 1 {
            return Err(format!("{name} {key:?}: no _sum"));
        }
    }
    Ok(())
}

/// Parses `name{label="value",...} value`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;

    let mut rest = &line[name_end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            let (label, after_name) = rest.split_once("=\"").ok_or("label without =\"")?;
            check_label_name(label)?;
            if labels.iter().any(|(existing, _)| existing == label) {
                return Err(format!("label {label} appears twice"));
            }
            let (raw, after_value) = split_quoted(after_name)?;
            labels.push((label.to_owned(), unescape(raw, true)?));
            if let Some(after_comma) = after_value.strip_prefix(',') {
                rest = after_comma;
            } else if let Some(after_close) = after_value.strip_prefix('}') {
                rest = after_close;
                break;
            } else {
                return Err("expected , or } after a label value".to_owned());
            }
        }
    }

    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    if value.contains(' ') {
        return Err("more than a value after the labels".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value)?,
    })
}

/// Splits a label value, up to its closing unescaped quote, from the rest.
fn split_quoted(text: &str) -> Result<(&str, &str), String> {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Ok((&text[..index], &text[index + 1..])),
            (false, '\n') => return Err("line feed inside a label value".to_owned()),
            (false, _) => {}
        }
    }
    Err("unterminated label value".to_owned())
}

/// Undoes the escapes of a help text (`\\`, `\n`) or of a label value
/// (also `\"`).
fn unescape(text: &str, label_value: bool) -> Result<String, String> {
    let mut output = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '"' && label_value {
            return Err("unescaped double quote".to_owned());
        }
        if c != '\\' {
            output.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => output.push('\\'),
            Some('n') => output.push('\n'),
            Some('"') if label_value => output.push('"'),
            other => return Err(format!("invalid escape \\{other:?}")),
        }
    }
    Ok(output)
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ if text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Err(format!("invalid value {text:?}"))
        }
        _ => text
            .parse()
            .map_err(|error| format!("invalid value {text:?}: {error}")),
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    // Written apart from the encoder's own check, so that a bug there does
    // not hide here.
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    if valid {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.starts_with("__")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}"))
    }
}
