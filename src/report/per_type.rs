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
use plotters::coord::ranged1d::SegmentValue;
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
    let (hard, easy) = match finite.len() {
        0 => (None, None),
        k => (Some(0usize), Some(k - 1)),
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
        let label = |e: DrawingAreaErrorKind<_>| anyhow!("drawing the chart: {e}");
        root.fill(&WHITE).map_err(label)?;
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22).into_font().style(FontStyle::Bold))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(240)
            .build_cartesian_2d(x_min..x_max, (0..n as i32).into_segmented())
            .map_err(label)?;
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
            .map_err(label)?;
        // Row i (hardest = 0) is drawn at the top: segment n-1-i.
        let seg = |i: usize| (n - 1 - i) as i32;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, m))| {
                let v = if m.srocc.is_finite() { m.srocc } else { 0.0 };
                let color = if Some(i) == hard {
                    HARD
                } else if Some(i) == easy {
                    EASY
                } else {
                    OTHER
                };
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(seg(i))),
                        (v, SegmentValue::Exact(seg(i) + 1)),
                    ],
                    color.filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(label)?;
        // Zero line and the overall SROCC.
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (0.0, SegmentValue::Exact(0)),
                    (0.0, SegmentValue::Exact(n as i32)),
                ],
                BLACK.stroke_width(1),
            )))
            .map_err(label)?;
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
                .map_err(label)?;
        }
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, m))| {
                let tag = if Some(i) == hard {
                    "  hardest"
                } else if Some(i) == easy {
                    "  easiest"
                } else {
                    ""
                };
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
                let color = if Some(i) == hard {
                    HARD
                } else if Some(i) == easy {
                    EASY
                } else {
                    BLACK
                };
                Text::new(
                    text,
                    (x, SegmentValue::CenterOf(seg(i))),
                    style
                        .color(&color)
                        .pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Left,
                            plotters::style::text_anchor::VPos::Center,
                        )),
                )
            }))
            .map_err(label)?;
        root.present().map_err(label)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("chart buffer size"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    super::plots::write_png(&img, path)
}
