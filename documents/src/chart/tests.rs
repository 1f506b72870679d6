//! Tests of the chart data checks and the SVG renderer: the SVG is parsed as XML and its texts
//! are compared with the title, the legend and German money labels worked out by hand.

use rust_decimal::Decimal;

use super::*;
use crate::samples::forecast as sample_forecast;
use crate::DocumentError;

/// Every `<text>` of the SVG, trimmed (plotters ends each with a line break), in order.
fn svg_texts(svg: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    document
        .descendants()
        .filter(|node| node.has_tag_name("text"))
        .map(|node| node.text().unwrap_or_default().trim().to_owned())
        .collect()
}

/// `1.234 €`: digits grouped in threes by dots, a no-break space, the euro sign.
fn is_german_whole_euros(text: &str) -> bool {
    let Some(number) = text.strip_suffix("\u{a0}€") else {
        return false;
    };
    let groups: Vec<&str> = number.split('.').collect();
    groups.iter().enumerate().all(|(index, group)| {
        group.chars().all(|digit| digit.is_ascii_digit())
            && if index == 0 {
                (1..=3).contains(&group.len())
            } else {
                group.len() == 3
            }
    })
}

#[test]
fn the_forecast_svg_has_its_title_legend_categories_and_german_money_labels() {
    let chart = sample_forecast();
    let svg = chart_svg(&chart, 900, 500).expect("the forecast renders");
    let texts = svg_texts(&svg);
    for expected in [
        "Ersatzbeschaffung 2027–2032",
        "Haushaltsjahr",
        "Kosten",
        "Tablets",
        "Laptops",
        "Desktop-PCs",
        "Displays",
        "2027",
        "2032",
    ] {
        assert!(
            texts.iter().any(|text| text == expected),
            "{expected:?} is missing from {texts:?}"
        );
    }
    // The totals above the columns, added by hand from `samples::forecast`:
    // 2027: 24,150 + 12,600 + 6,300 + 4,500 = 47,550
    // 2028: 61,272 + 8,400 + 0 + 2,250 = 71,922
    // 2032: 12,075 + 21,000 + 7,200 + 3,000 = 43,275
    for total in ["47.550\u{a0}€", "71.922\u{a0}€", "43.275\u{a0}€"] {
        assert!(
            texts.iter().any(|text| text == total),
            "{total:?} is missing"
        );
    }
    // The axis ends on a tick above the highest column with room for its total:
    // 71,922 × 1.08 = 77,675.76; steps of 10,000 would take 8 (more than 6), steps of 20,000
    // take 4, so the axis runs 0, 20.000, ... 80.000 €.
    for label in [
        "0\u{a0}€",
        "20.000\u{a0}€",
        "60.000\u{a0}€",
        "80.000\u{a0}€",
    ] {
        assert!(
            texts.iter().any(|text| text == label),
            "{label:?} in {texts:?}"
        );
    }
    assert!(
        !texts.iter().any(|text| text == "10.000\u{a0}€"),
        "{texts:?}"
    );
    let money: Vec<&String> = texts.iter().filter(|text| text.contains('€')).collect();
    assert!(money.len() >= 6, "an axis and six totals: {money:?}");
    for label in money {
        assert!(
            is_german_whole_euros(label),
            "{label:?} is no German amount"
        );
    }
    // The series are filled with the palette in order; the first is the Okabe–Ito blue.
    assert!(svg.contains("fill=\"#0072B2\""), "the first series' colour");
    assert!(
        svg.contains("fill=\"#D55E00\""),
        "the fourth series' colour"
    );
}

#[test]
fn the_same_chart_gives_the_same_svg() {
    let chart = sample_forecast();
    let first = chart_svg(&chart, 800, 450).expect("renders");
    let second = chart_svg(&chart, 800, 450).expect("renders");
    assert_eq!(first, second);
    let mut other = chart.clone();
    other.series[0].values[0] = other.series[0].values[0].map(|v| v + Decimal::ONE);
    assert_ne!(first, chart_svg(&other, 800, 450).expect("renders"));
}

#[test]
fn small_amounts_get_cents_and_other_numbers_no_euro_sign() {
    let mut chart = sample_forecast();
    chart.categories.truncate(2);
    chart.series = vec![Series {
        name: "Druckerpapier".to_owned(),
        values: vec![Some(Decimal::new(1250, 2)), Some(Decimal::new(4, 0))],
    }];
    let texts = svg_texts(&chart_svg(&chart, 640, 360).expect("renders"));
    // 12.50 × 1.08 = 13.50: steps of 2 would take 7 to get there, steps of 5 take 3, so the
    // axis is 0, 5, 10, 15 €, in whole euros; the column's total keeps its cents.
    for label in ["0\u{a0}€", "5\u{a0}€", "15\u{a0}€", "12,50\u{a0}€"] {
        assert!(
            texts.iter().any(|text| text == label),
            "{label:?} in {texts:?}"
        );
    }

    chart.series[0].values = vec![Some(Decimal::new(125, 2)), Some(Decimal::new(4, 1))];
    let texts = svg_texts(&chart_svg(&chart, 640, 360).expect("renders"));
    // 1.25 × 1.08 = 1.35: steps of 0.2 take 7, steps of 0.5 take 3, so the labels show cents.
    for label in ["0,50\u{a0}€", "1,50\u{a0}€", "1,25\u{a0}€"] {
        assert!(
            texts.iter().any(|text| text == label),
            "{label:?} in {texts:?}"
        );
    }

    chart.y_is_money = false;
    chart.kind = ChartKind::Line;
    let texts = svg_texts(&chart_svg(&chart, 640, 360).expect("renders"));
    assert!(texts.iter().all(|text| !text.contains('€')), "{texts:?}");
    assert!(texts.iter().any(|text| text == "1,5"), "{texts:?}");
}

#[test]
fn every_kind_renders_every_series_name_in_the_legend() {
    for kind in [ChartKind::StackedColumn, ChartKind::Column, ChartKind::Line] {
        let mut chart = sample_forecast();
        chart.kind = kind;
        let texts = svg_texts(&chart_svg(&chart, 640, 400).expect("renders"));
        for series in &chart.series {
            assert!(texts.contains(&series.name), "{kind:?}: {}", series.name);
        }
    }
}

#[test]
fn a_chart_that_cannot_be_drawn_whole_is_refused_with_its_reason() {
    let mut chart = sample_forecast();
    chart.series[1].values.pop();
    let error = chart_svg(&chart, 800, 450).expect_err("a short series");
    assert!(matches!(error, DocumentError::Chart { .. }));
    assert_eq!(
        error.to_string(),
        "chart \"Ersatzbeschaffung 2027–2032\": series \"Laptops\" has 5 values for 6 categories"
    );

    let mut chart = sample_forecast();
    chart.series.clear();
    assert!(chart_svg(&chart, 800, 450)
        .expect_err("no series")
        .to_string()
        .ends_with("no series to plot"));

    let error = chart_svg(&sample_forecast(), 100, 80).expect_err("too small");
    assert!(error.to_string().contains("too small"), "{error}");
}

/// The points of every series line (a `<polyline>` 3 wide; axes and grid are thinner) and the
/// number of `<circle>`s of the SVG.
fn lines_and_dots(svg: &str) -> (Vec<usize>, usize) {
    let document = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let lines = document
        .descendants()
        .filter(|node| node.has_tag_name("polyline") && node.attribute("stroke-width") == Some("3"))
        .map(|node| {
            node.attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .count()
        })
        .collect();
    let dots = document
        .descendants()
        .filter(|node| node.has_tag_name("circle"))
        .count();
    (lines, dots)
}

#[test]
fn a_line_breaks_where_a_value_is_missing_instead_of_dropping_to_zero() {
    let mut chart = sample_forecast();
    chart.kind = ChartKind::Line;
    chart.y_is_money = false;
    chart.categories.truncate(5);
    chart.series = vec![Series {
        name: "Median".to_owned(),
        values: [Some(8), Some(9), Some(7), Some(8), Some(9)]
            .map(|v| v.map(Decimal::from))
            .to_vec(),
    }];
    let (whole, whole_dots) = lines_and_dots(&chart_svg(&chart, 800, 450).expect("renders"));
    // A quarter without tickets in the middle: the line stops before it and goes on after it,
    // and it has no dot; nothing is drawn at zero.
    chart.series[0].values[2] = None;
    let svg = chart_svg(&chart, 800, 450).expect("renders");
    let (broken, broken_dots) = lines_and_dots(&svg);
    assert_eq!(whole, vec![5]);
    assert_eq!(broken, vec![2, 2], "two runs of two points");
    assert_eq!(broken_dots, whole_dots - 1);
    // The axis still starts at 0 and reaches the values there are.
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|t| t == "10"), "{texts:?}");
}
