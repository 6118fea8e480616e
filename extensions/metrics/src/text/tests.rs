use super::*;
use crate::parse::parse;

#[test]
fn counter_family_has_help_type_and_samples() {
    let mut encoder = TextEncoder::new();
    encoder.family("registry_a_total", "Things done.", MetricType::Counter);
    encoder.sample("registry_a_total", &[("kind", "x"), ("zone", "b")], 3.0);
    encoder.sample("registry_a_total", &[], 0.5);
    let expected = "# HELP registry_a_total Things done.\n\
                    # TYPE registry_a_total counter\n\
                    registry_a_total{kind=\"x\",zone=\"b\"} 3\n\
                    registry_a_total 0.5\n";
    assert_eq!(encoder.finish(), expected);
}

#[test]
fn label_values_are_escaped() {
    let mut encoder = TextEncoder::new();
    encoder.family("registry_a", "A.", MetricType::Gauge);
    encoder.sample("registry_a", &[("path", "C:\\dir \"x\"\nnext")], 1.0);
    let text = encoder.finish();
    assert!(
        text.contains("registry_a{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n"),
        "{text}"
    );
}

#[test]
fn help_escapes_backslash_and_line_feed_only() {
    let mut encoder = TextEncoder::new();
    encoder.family(
        "registry_a",
        "Path \"C:\\x\"\nsecond line.",
        MetricType::Gauge,
    );
    let text = encoder.finish();
    let help = text.lines().next().unwrap();
    assert_eq!(help, "# HELP registry_a Path \"C:\\\\x\"\\nsecond line.");
}

#[test]
fn escaped_values_parse_back_unchanged() {
    let values = [
        "",
        "plain",
        "back\\slash",
        "\\",
        "\\\\n",
        "quote\"inside",
        "\"",
        "line\nfeed",
        "\n\n",
        "braces } and { commas , equals =",
        "tab\tand unicode é 🦀",
        "trailing backslash \\",
    ];
    let mut encoder = TextEncoder::new();
    encoder.family(
        "registry_a",
        "Help with \\ and\nnewline.",
        MetricType::Gauge,
    );
    for (index, value) in values.iter().enumerate() {
        let index = index.to_string();
        encoder.sample("registry_a", &[("index", &index), ("value", value)], 1.0);
    }
    let text = encoder.finish();

    let families = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].help, "Help with \\ and\nnewline.");
    let parsed: Vec<&str> = families[0]
        .samples
        .iter()
        .map(|sample| sample.label("value").unwrap())
        .collect();
    assert_eq!(parsed, values);
}

#[test]
fn special_and_extreme_values_parse_back() {
    let values = [
        0.0,
        -0.0,
        1.0,
        -2.5,
        0.1,
        1e-7,
        1e21,
        123_456_789_012_345_680.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut encoder = TextEncoder::new();
    encoder.family("registry_a", "A.", MetricType::Gauge);
    for (index, value) in values.iter().enumerate() {
        encoder.sample("registry_a", &[("index", &index.to_string())], *value);
    }
    encoder.family("registry_nan", "N.", MetricType::Gauge);
    encoder.sample("registry_nan", &[], f64::NAN);
    let text = encoder.finish();

    assert!(text.contains("registry_a{index=\"10\"} +Inf\n"), "{text}");
    assert!(text.contains("registry_a{index=\"11\"} -Inf\n"), "{text}");
    assert!(text.contains("registry_nan NaN\n"), "{text}");
    let families = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let parsed: Vec<f64> = families[0].samples.iter().map(|s| s.value).collect();
    assert_eq!(parsed, values);
    assert!(families[1].samples[0].value.is_nan());
}

#[test]
fn histogram_buckets_are_cumulative_and_end_with_inf() {
    let mut encoder = TextEncoder::new();
    encoder.family("registry_d_seconds", "D.", MetricType::Histogram);
    let labels = [("route", "manifest")];
    encoder.histogram(
        "registry_d_seconds",
        &labels,
        &[0.005, 0.1, 1.0],
        &[2, 0, 3, 1],
        4.25,
    );
    let expected = "# HELP registry_d_seconds D.\n\
                    # TYPE registry_d_seconds histogram\n\
                    registry_d_seconds_bucket{route=\"manifest\",le=\"0.005\"} 2\n\
                    registry_d_seconds_bucket{route=\"manifest\",le=\"0.1\"} 2\n\
                    registry_d_seconds_bucket{route=\"manifest\",le=\"1\"} 5\n\
                    registry_d_seconds_bucket{route=\"manifest\",le=\"+Inf\"} 6\n\
                    registry_d_seconds_sum{route=\"manifest\"} 4.25\n\
                    registry_d_seconds_count{route=\"manifest\"} 6\n";
    let text = encoder.finish();
    assert_eq!(text, expected);
    parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
}

#[test]
fn histogram_without_labels_has_only_le() {
    let mut encoder = TextEncoder::new();
    encoder.family("registry_d_seconds", "D.", MetricType::Histogram);
    encoder.histogram("registry_d_seconds", &[], &[1.0], &[0, 0], 0.0);
    let text = encoder.finish();
    assert!(
        text.contains("registry_d_seconds_bucket{le=\"1\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("registry_d_seconds_bucket{le=\"+Inf\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("registry_d_seconds_sum 0\n"), "{text}");
    assert!(text.contains("registry_d_seconds_count 0\n"), "{text}");
    parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
}

#[test]
fn parser_rejects_broken_output() {
    // The checks above are only as strong as the parser, so it must fail
    // on each of these.
    let cases = [
        ("no final line feed", "# HELP a A.\n# TYPE a gauge\na 1"),
        ("sample before TYPE", "# HELP a A.\na 1\n# TYPE a gauge\n"),
        (
            "family split",
            "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",
        ),
        (
            "duplicate series",
            "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
        ),
        (
            "raw quote",
            "# HELP a A.\n# TYPE a gauge\na{x=\"a\"b\"} 1\n",
        ),
        (
            "unknown escape",
            "# HELP a A.\n# TYPE a gauge\na{x=\"a\\tb\"} 1\n",
        ),
        ("bad value", "# HELP a A.\n# TYPE a gauge\na inf\n"),
        (
            "no +Inf",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        ),
        (
            "decreasing",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        ),
        (
            "count differs",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
        ),
    ];
    for (case, text) in cases {
        assert!(parse(text).is_err(), "{case} parsed:\n{text}");
    }
}

#[test]
fn metric_names_follow_the_format() {
    for name in ["a", "_a", ":a", "registry_a_total", "a:b_1"] {
        assert!(is_valid_metric_name(name), "{name}");
    }
    for name in ["", "1a", "a-b", "a b", "a.b", "é"] {
        assert!(!is_valid_metric_name(name), "{name}");
    }
}

#[test]
fn label_names_follow_the_format() {
    for name in ["a", "_a", "route", "a_1"] {
        assert!(is_valid_label_name(name), "{name}");
    }
    for name in ["", "1a", "a:b", "a-b", "__name__", "__x"] {
        assert!(!is_valid_label_name(name), "{name}");
    }
}
