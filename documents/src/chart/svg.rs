//! The SVG renderer of `Chart`: plotters draws the axes, grid and y labels; the columns, the
//! category labels and the legend are placed here by hand, because plotters' own legend sits
//! inside the plot (over the columns) and its numeric x axis puts ticks between categories.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use super::{Chart, ChartKind};
use crate::{german, DocumentError};

/// The series colours, in order: the Okabe–Ito palette, which people with any common form of
/// colour blindness can tell apart, ordered so that neighbours in a stack differ in lightness
/// too, and a mid grey for a ninth series ("Sonstige"). A chart with more than nine series
/// repeats them; its legend then names two series with one colour, so reports keep to nine.
pub const PALETTE: [(u8, u8, u8); 9] = [
    (0x00, 0x72, 0xB2), // blue
    (0xE6, 0x9F, 0x00), // orange
    (0x00, 0x9E, 0x73), // bluish green
    (0xD5, 0x5E, 0x00), // vermillion
    (0x56, 0xB4, 0xE9), // sky blue
    (0xCC, 0x79, 0xA7), // reddish purple
    (0xF0, 0xE4, 0x42), // yellow
    (0x00, 0x00, 0x00), // black
    (0x99, 0x99, 0x99), // grey
];

/// The family plotters measures with (the registered DejaVu bytes) and the SVG names.
const FONT: &str = "DejaVu Sans, sans-serif";
const TITLE_SIZE: f64 = 22.0;
const LABEL_SIZE: f64 = 15.0;
const TEXT: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const MARGIN: u32 = 12;
/// The legend's colour square and the gaps around its entries, in pixels.
const SWATCH: u32 = 12;
const SWATCH_GAP: u32 = 6;
const ENTRY_GAP: u32 = 22;
const LEGEND_LINE: u32 = 22;
/// Smaller than this, labels and legend no longer fit beside a plot worth looking at.
const MIN_WIDTH: u32 = 320;
const MIN_HEIGHT: u32 = 200;

/// Renders `chart` as a standalone SVG document of `width` × `height` pixels.
/// The same chart gives the same bytes.
pub fn chart_svg(chart: &Chart, width: u32, height: u32) -> Result<String, DocumentError> {
    chart.check()?;
    if width < MIN_WIDTH || height < MIN_HEIGHT {
        return Err(DocumentError::Chart {
            chart: chart.title.clone(),
            message: format!(
                "{width} × {height} pixels is too small; it needs at least {MIN_WIDTH} × {MIN_HEIGHT}"
            ),
        });
    }
    register_font().map_err(|message| DocumentError::Chart {
        chart: chart.title.clone(),
        message,
    })?;
    let values = Values::of(chart)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw(&root, chart, &values).map_err(|message| DocumentError::Chart {
            chart: chart.title.clone(),
            message,
        })?;
        root.present().map_err(|error| DocumentError::Chart {
            chart: chart.title.clone(),
            message: error.to_string(),
        })?;
    }
    Ok(svg)
}

/// plotters keeps fonts in a process-wide table; registering once is enough for every chart.
fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let fonts = [
                (FontStyle::Normal, dejavu::sans::regular()),
                (FontStyle::Bold, dejavu::sans::bold()),
            ];
            for (style, bytes) in fonts {
                plotters::style::register_font(FONT, style, bytes)
                    .map_err(|_| "the compiled-in DejaVu Sans font could not be read".to_owned())?;
            }
            Ok(())
        })
        .clone()
}

/// The chart's values as the floating-point numbers plotters draws, and the y range that holds
/// them (stacks added up, positive and negative parts apart as Excel stacks them).
struct Values {
    /// `series[s][c]`: the value of series `s` at category `c`, if it has one.
    series: Vec<Vec<Option<f64>>>,
    bottom: f64,
    top: f64,
    /// How many labels the y axis gets, from `bottom` to `top`.
    ticks: usize,
    /// Decimals of the y labels: euros to the cent only on an axis whose steps are cents.
    decimals: u32,
}

impl Values {
    fn of(chart: &Chart) -> Result<Self, DocumentError> {
        let mut series = Vec::with_capacity(chart.series.len());
        for one in &chart.series {
            let mut values = Vec::with_capacity(one.values.len());
            for value in &one.values {
                values.push(
                    value
                        .map(|value| {
                            f64::try_from(value).map_err(|_| DocumentError::Chart {
                                chart: chart.title.clone(),
                                message: format!(
                                    "series {:?}: {value} is no number to draw",
                                    one.name
                                ),
                            })
                        })
                        .transpose()?,
                );
            }
            series.push(values);
        }
        let (mut low, mut high) = (0.0_f64, 0.0_f64);
        for category in 0..chart.categories.len() {
            let at = series
                .iter()
                .filter_map(|values: &Vec<Option<f64>>| values[category]);
            if chart.kind == ChartKind::StackedColumn {
                high = high.max(at.clone().filter(|value| *value > 0.0).sum());
                low = low.min(at.filter(|value| *value < 0.0).sum());
            } else {
                high = high.max(at.clone().fold(0.0, f64::max));
                low = low.min(at.fold(0.0, f64::min));
            }
        }
        let (bottom, top, ticks, step) = axis(low, high);
        let decimals = if chart.y_is_money && step < 1.0 { 2 } else { 0 };
        Ok(Self {
            series,
            bottom,
            top,
            ticks,
            decimals,
        })
    }

    fn label(&self, chart: &Chart, value: f64) -> String {
        let value = Decimal::from_f64(value).unwrap_or_default();
        if chart.y_is_money {
            german::euros(value, self.decimals)
        } else {
            german::number_trimmed(value, 2)
        }
    }
}

/// The y axis for values from `low` to `high` (0 lies between them): a step of 1, 2 or 5 times
/// a power of ten that gives at most `MAX_STEPS` steps once the range is widened by 8 % (room
/// for the totals above the columns), and the ends on multiples of that step, so that the axis
/// ends on a labelled tick. Returns the bottom, the top, the number of ticks and the step.
/// plotters picks its ticks from the same 1-2-5 series, the finest that gives no more labels
/// than asked for, so asking for exactly these ticks gives them.
fn axis(low: f64, high: f64) -> (f64, f64, usize, f64) {
    const MAX_STEPS: f64 = 6.0;
    let (low, high) = (low * 1.08, high * 1.08);
    let span = if high - low > 0.0 { high - low } else { 1.0 };
    let mut step = 10_f64.powf((span / MAX_STEPS).log10().floor());
    for factor in [1.0, 2.0, 5.0, 10.0] {
        let candidate = step * factor;
        if (high / candidate).ceil() - (low / candidate).floor() <= MAX_STEPS {
            step = candidate;
            break;
        }
    }
    let bottom = (low / step).floor() * step;
    let top = ((high / step).ceil() * step).max(bottom + step);
    let ticks = ((top - bottom) / step).round() as usize + 1;
    (bottom, top, ticks, step)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn draw(root: &Area<'_>, chart: &Chart, values: &Values) -> Result<(), String> {
    let error = |error: DrawingAreaErrorKind<_>| error.to_string();
    root.fill(&WHITE).map_err(error)?;
    let label_font = (FONT, LABEL_SIZE).into_font().color(&TEXT);
    let (width, height) = root.dim_in_pixel();

    let names: Vec<&str> = chart.series.iter().map(|one| one.name.as_str()).collect();
    let legend = legend_rows(root, &names, &label_font, width - 2 * MARGIN)?;
    let legend_height = legend.len() as u32 * LEGEND_LINE + MARGIN;
    let (plot_area, legend_area) = root.split_vertically(height - legend_height);

    // The y labels need the width of the widest one; the top and bottom are the longest.
    let y_label_width = [values.top, values.bottom]
        .iter()
        .map(|value| text_width(root, &values.label(chart, *value), &label_font))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    let text_height = text_size(root, "Hg", &label_font)?.1;

    // Category labels lie flat when each fits its column's slot, else run upwards.
    let category_width = chart
        .categories
        .iter()
        .map(|category| text_width(root, category, &label_font))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    let estimated_slot = (width.saturating_sub(y_label_width + 4 * MARGIN + text_height)) as f64
        / chart.categories.len() as f64;
    let upright = f64::from(category_width) + 8.0 > estimated_slot;
    let category_depth = if upright { category_width } else { text_height };
    let x_area = category_depth + text_height + 24;

    let mut context = ChartBuilder::on(&plot_area)
        .margin(MARGIN)
        .margin_right(2 * MARGIN)
        .caption(
            &chart.title,
            (FONT, TITLE_SIZE)
                .into_font()
                .style(FontStyle::Bold)
                .color(&TEXT),
        )
        .x_label_area_size(x_area)
        .y_label_area_size(y_label_width + text_height + 22)
        .build_cartesian_2d(
            0.0..chart.categories.len() as f64,
            values.bottom..values.top,
        )
        .map_err(error)?;
    context
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(values.ticks)
        .y_label_formatter(&|value| values.label(chart, *value))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(TEXT)
        .label_style(label_font.clone())
        .axis_desc_style(label_font.clone())
        .x_desc(chart.x_title.as_str())
        .y_desc(chart.y_title.as_str())
        .draw()
        .map_err(error)?;

    draw_values(&mut context, chart, values).map_err(error)?;

    // Category labels under their columns, on the root so they may sit outside the plot.
    for (index, category) in chart.categories.iter().enumerate() {
        let (x, y) = context.backend_coord(&(index as f64 + 0.5, values.bottom));
        let style = if upright {
            label_font
                .clone()
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center))
        } else {
            label_font.clone().pos(Pos::new(HPos::Center, VPos::Top))
        };
        root.draw(&Text::new(category.as_str(), (x, y + 6), style))
            .map_err(error)?;
    }

    if chart.kind == ChartKind::StackedColumn {
        draw_totals(root, &context, chart, values)?;
    }
    draw_legend(&legend_area, &legend, &label_font, width).map_err(error)?;
    Ok(())
}

type Context<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn colour(series: usize) -> RGBColor {
    let (red, green, blue) = PALETTE[series % PALETTE.len()];
    RGBColor(red, green, blue)
}

fn draw_values(
    context: &mut Context<'_, '_>,
    chart: &Chart,
    values: &Values,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let categories = chart.categories.len();
    match chart.kind {
        ChartKind::StackedColumn => {
            let mut positive = vec![0.0_f64; categories];
            let mut negative = vec![0.0_f64; categories];
            for (series, series_values) in values.series.iter().enumerate() {
                let mut bars = Vec::new();
                for (category, value) in series_values.iter().enumerate() {
                    let Some(value) = value else {
                        continue;
                    };
                    let base = if *value >= 0.0 {
                        &mut positive[category]
                    } else {
                        &mut negative[category]
                    };
                    let (from, to) = (*base, *base + value);
                    *base = to;
                    bars.push(column(
                        category as f64 + 0.2,
                        category as f64 + 0.8,
                        from,
                        to,
                    ));
                }
                draw_bars(context, bars, colour(series))?;
            }
        }
        ChartKind::Column => {
            let width = 0.7 / values.series.len() as f64;
            for (series, series_values) in values.series.iter().enumerate() {
                let bars = series_values
                    .iter()
                    .enumerate()
                    .filter_map(|(category, value)| Some((category, (*value)?)))
                    .map(|(category, value)| {
                        let left = category as f64 + 0.15 + width * series as f64;
                        column(left, left + width, 0.0, value)
                    });
                draw_bars(context, bars.collect(), colour(series))?;
            }
        }
        ChartKind::Line => {
            for (series, series_values) in values.series.iter().enumerate() {
                let colour = colour(series);
                // A line through each run of values; a category without one breaks it.
                let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
                for (category, value) in series_values.iter().enumerate() {
                    match value {
                        Some(value) => {
                            if let Some(run) = runs.last_mut() {
                                run.push((category as f64 + 0.5, *value));
                            }
                        }
                        None => runs.push(Vec::new()),
                    }
                }
                for run in runs.iter().filter(|run| run.len() > 1) {
                    context.draw_series(std::iter::once(PathElement::new(
                        run.clone(),
                        colour.stroke_width(3),
                    )))?;
                }
                context.draw_series(
                    runs.into_iter()
                        .flatten()
                        .map(|point| Circle::new(point, 4, colour.filled())),
                )?;
            }
        }
    }
    Ok(())
}

fn column(left: f64, right: f64, from: f64, to: f64) -> [(f64, f64); 2] {
    [(left, from), (right, to)]
}

/// Each part filled, with a thin white edge that keeps neighbours in a stack apart.
fn draw_bars(
    context: &mut Context<'_, '_>,
    bars: Vec<[(f64, f64); 2]>,
    colour: RGBColor,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let bars: Vec<_> = bars
        .into_iter()
        .filter(|[low, high]| low.1 != high.1)
        .collect();
    context.draw_series(
        bars.iter()
            .map(|corners| Rectangle::new(*corners, colour.filled())),
    )?;
    context.draw_series(
        bars.iter()
            .map(|corners| Rectangle::new(*corners, WHITE.stroke_width(1))),
    )?;
    Ok(())
}

/// The total of each stacked column above it, where it fits the column's slot.
fn draw_totals(
    root: &Area<'_>,
    context: &Context<'_, '_>,
    chart: &Chart,
    values: &Values,
) -> Result<(), String> {
    let font = (FONT, LABEL_SIZE - 2.0)
        .into_font()
        .color(&TEXT)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let slot = {
        let (left, _) = context.backend_coord(&(0.0, 0.0));
        let (right, _) = context.backend_coord(&(1.0, 0.0));
        right - left
    };
    for category in 0..chart.categories.len() {
        let total: f64 = values
            .series
            .iter()
            .filter_map(|series| series[category])
            .filter(|value| *value > 0.0)
            .sum();
        if total <= 0.0 {
            continue;
        }
        let label = if chart.y_is_money {
            let total = Decimal::from_f64(total).unwrap_or_default();
            // Cents only where the total has some: `47.550 €`, `12,50 €`.
            german::euros(total, if total.fract().is_zero() { 0 } else { 2 })
        } else {
            values.label(chart, total)
        };
        if i32::try_from(text_width(root, &label, &font)?).unwrap_or(i32::MAX) > slot - 4 {
            continue;
        }
        let (x, y) = context.backend_coord(&(category as f64 + 0.5, total));
        root.draw(&Text::new(label, (x, y - 4), font.clone()))
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// The legend's entries broken into rows that fit `width`: (name, its series, its width).
type LegendRow<'n> = Vec<(&'n str, usize, u32)>;

fn legend_rows<'n>(
    root: &Area<'_>,
    names: &[&'n str],
    font: &TextStyle<'_>,
    width: u32,
) -> Result<Vec<LegendRow<'n>>, String> {
    let mut rows: Vec<LegendRow<'n>> = vec![Vec::new()];
    let mut used = 0;
    for (series, name) in names.iter().enumerate() {
        let entry = SWATCH + SWATCH_GAP + text_width(root, name, font)?;
        let row = rows.last_mut().expect("rows start with one");
        if !row.is_empty() && used + ENTRY_GAP + entry > width {
            rows.push(vec![(*name, series, entry)]);
            used = entry;
        } else {
            used += if row.is_empty() { 0 } else { ENTRY_GAP } + entry;
            row.push((*name, series, entry));
        }
    }
    Ok(rows)
}

fn draw_legend(
    area: &Area<'_>,
    rows: &[LegendRow<'_>],
    font: &TextStyle<'_>,
    width: u32,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let font = font.clone().pos(Pos::new(HPos::Left, VPos::Center));
    for (line, row) in rows.iter().enumerate() {
        let row_width: u32 = row.iter().map(|(_, _, entry)| entry).sum::<u32>()
            + ENTRY_GAP * (row.len() as u32).saturating_sub(1);
        let mut x = (width.saturating_sub(row_width) / 2) as i32;
        let middle = (line as u32 * LEGEND_LINE + LEGEND_LINE / 2) as i32;
        for (name, series, entry) in row {
            let half = (SWATCH / 2) as i32;
            area.draw(&Rectangle::new(
                [(x, middle - half), (x + SWATCH as i32, middle + half)],
                colour(*series).filled(),
            ))?;
            area.draw(&Text::new(
                *name,
                (x + (SWATCH + SWATCH_GAP) as i32, middle),
                font.clone(),
            ))?;
            x += (*entry + ENTRY_GAP) as i32;
        }
    }
    Ok(())
}

fn text_size(root: &Area<'_>, text: &str, font: &TextStyle<'_>) -> Result<(u32, u32), String> {
    root.estimate_text_size(text, font)
        .map_err(|error| error.to_string())
}

fn text_width(root: &Area<'_>, text: &str, font: &TextStyle<'_>) -> Result<u32, String> {
    Ok(text_size(root, text, font)?.0)
}
