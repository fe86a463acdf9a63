//! Per-distortion-type bar chart (PNG): the SROCC of a model on each distortion type, sorted
//! from hardest (lowest SROCC, top) to easiest (bottom), with the hardest bar in red, the easiest
//! in green, each bar labelled with its SROCC and PLCC, and the overall SROCC as a dashed line
//! (value in the axis title).
//!
//! Drawn with `plotters` on its bitmap backend and encoded with `image`; text uses the DejaVu
//! Sans font compiled into the binary (`assets/fonts/`, rendered by `ab_glyph`), so no system
//! font or font configuration is needed.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use normiqa_core::metrics::Metrics;
use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::FontStyle;

const HARD: RGBColor = RGBColor(214, 39, 40);
const EASY: RGBColor = RGBColor(44, 160, 44);
const OTHER: RGBColor = RGBColor(70, 130, 180);

/// Sorted copy of `rows`: ascending SROCC (hardest first); NaN SROCC last.
pub fn sorted_by_srocc(rows: &[(String, Metrics)]) -> Vec<(String, Metrics)> {
    let mut v = rows.to_vec();
    v.sort_by(|a, b| match (a.1.srocc.is_nan(), b.1.srocc.is_nan()) {
        (false, false) => a.1.srocc.partial_cmp(&b.1.srocc).unwrap(),
        (x, y) => x.cmp(&y),
    });
    v
}

/// The chart of [`plot_per_type`]: SROCC along x, one segment per type along y.
type TypeChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordi32>>>;

/// The error of a drawing call, named.
fn drawing<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// The hardest and the easiest row (of rows sorted by [`sorted_by_srocc`]) with a finite
/// SROCC: the first and the last of those.
#[derive(Clone, Copy)]
struct Ends {
    hard: Option<usize>,
    easy: Option<usize>,
}

impl Ends {
    /// `hard` for the hardest row, `easy` for the easiest, `other` for the others.
    fn pick<T>(&self, i: usize, hard: T, easy: T, other: T) -> T {
        if Some(i) == self.hard {
            hard
        } else if Some(i) == self.easy {
            easy
        } else {
            other
        }
    }
}

/// Draws the chart of `rows` (distortion name, metrics; any order) to the PNG `path`.
/// `overall`: the SROCC over all images, drawn as a dashed line when given.
pub fn plot_per_type(
    rows: &[(String, Metrics)],
    title: &str,
    overall: Option<f64>,
    path: &Path,
) -> Result<()> {
    if rows.is_empty() {
        return Err(anyhow!("no distortion types to plot"));
    }
    super::font::register()?;
    let rows = sorted_by_srocc(rows);
    let n = rows.len();
    let finite: Vec<f64> = rows
        .iter()
        .map(|r| r.1.srocc)
        .filter(|v| v.is_finite())
        .collect();
    let ends = match finite.len() {
        0 => Ends { hard: None, easy: None },
        k => Ends { hard: Some(0usize), easy: Some(k - 1) },
    };
    let lo = finite
        .iter()
        .cloned()
        .fold(0.0f64, f64::min)
        .min(overall.unwrap_or(0.0));
    let x_min = if lo < 0.0 {
        (lo * 10.0).floor() / 10.0 - 0.05
    } else {
        0.0
    };
    let x_max = 1.6; // room for the value labels right of the bars
    let (w, h) = (1200u32, 110 + 30 * n as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22).into_font().style(FontStyle::Bold))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(240)
            .build_cartesian_2d(x_min..x_max, (0..n as i32).into_segmented())
            .map_err(drawing)?;
        draw_axes(&mut chart, &rows, overall)?;
        draw_bars(&mut chart, &rows, ends)?;
        draw_lines(&mut chart, n, overall)?;
        draw_values(&mut chart, &rows, ends)?;
        root.present().map_err(drawing)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("chart buffer size"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    super::plots::write_png(&img, path)
}

/// The axes: SROCC ticks (0 to 1) with the overall SROCC in the x title, the type names on y
/// (hardest at the top).
fn draw_axes(chart: &mut TypeChart<'_, '_>, rows: &[(String, Metrics)], overall: Option<f64>) -> Result<()> {
    let n = rows.len();
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .x_desc(match overall.filter(|o| o.is_finite()) {
            Some(o) => format!(
                "SROCC per type (fused head); dashed line: SROCC over all images, {o:.3}"
            ),
            None => "SROCC per type (fused head)".to_string(),
        })
        .x_labels(20)
        .x_label_formatter(&|x| match *x {
            x if x > 1.0 + 1e-9 => String::new(),
            x if x.abs() < 1e-9 => "0.0".to_string(),
            x => format!("{x:.1}"),
        })
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(s) if (0..n as i32).contains(s) => {
                names[n - 1 - *s as usize].clone()
            }
            _ => String::new(),
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(drawing)?;
    Ok(())
}

/// The segment of row `i` of `n`: row 0 (the hardest) is drawn at the top.
fn seg(n: usize, i: usize) -> i32 {
    (n - 1 - i) as i32
}

/// One bar per type (NaN: none), the hardest red, the easiest green.
fn draw_bars(chart: &mut TypeChart<'_, '_>, rows: &[(String, Metrics)], ends: Ends) -> Result<()> {
    let n = rows.len();
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, m))| {
            let v = if m.srocc.is_finite() { m.srocc } else { 0.0 };
            let color = ends.pick(i, HARD, EASY, OTHER);
            let mut r = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(seg(n, i))),
                    (v, SegmentValue::Exact(seg(n, i) + 1)),
                ],
                color.filled(),
            );
            r.set_margin(4, 4, 0, 0);
            r
        }))
        .map_err(drawing)?;
    Ok(())
}

/// The zero line and, when given, the overall SROCC (dashed).
fn draw_lines(chart: &mut TypeChart<'_, '_>, n: usize, overall: Option<f64>) -> Result<()> {
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![
                (0.0, SegmentValue::Exact(0)),
                (0.0, SegmentValue::Exact(n as i32)),
            ],
            BLACK.stroke_width(1),
        )))
        .map_err(drawing)?;
    if let Some(o) = overall.filter(|o| o.is_finite()) {
        chart
            .draw_series(DashedLineSeries::new(
                vec![
                    (o, SegmentValue::Exact(0)),
                    (o, SegmentValue::Exact(n as i32)),
                ],
                8,
                6,
                BLACK.stroke_width(2),
            ))
            .map_err(drawing)?;
    }
    Ok(())
}

/// Each bar's label right of it: SROCC, PLCC and n, "hardest"/"easiest" in bold and colour.
fn draw_values(chart: &mut TypeChart<'_, '_>, rows: &[(String, Metrics)], ends: Ends) -> Result<()> {
    let n = rows.len();
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, m))| {
            let tag = ends.pick(i, "  hardest", "  easiest", "");
            let text = if m.srocc.is_finite() {
                format!("{:.3}  (PLCC {:.3}, n={}){tag}", m.srocc, m.plcc, m.n)
            } else {
                format!("n/a (n={})", m.n)
            };
            let x = if m.srocc.is_finite() {
                m.srocc.max(0.0)
            } else {
                0.0
            } + 0.01;
            let style = if tag.is_empty() {
                ("sans-serif", 14).into_font()
            } else {
                ("sans-serif", 14).into_font().style(FontStyle::Bold)
            };
            let color = ends.pick(i, HARD, EASY, BLACK);
            Text::new(
                text,
                (x, SegmentValue::CenterOf(seg(n, i))),
                style
                    .color(&color)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    )),
            )
        }))
        .map_err(drawing)?;
    Ok(())
}
