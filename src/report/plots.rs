//! PNG figures drawn with plotters into an RGB buffer, saved with `image`: line charts (metric vs
//! epoch with threshold circles, sweeps, b̂), bar charts and scatter plots.
//!
//! Text uses a subset of DejaVu Sans (Latin, Greek, a few symbols; its licence is in
//! `fonts/LICENSE-DejaVu.txt`) compiled into the binary and given to plotters' pure-Rust
//! `ab_glyph` renderer: no system font, fontconfig or download is needed.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Colours in the order series get them (matplotlib's tab10; MAE orange, MSE blue, NiN green
/// when listed in that order as in the paper's Fig. 1).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// Draws the chart's series legend at `pos` in the style of every normiqa figure.
pub(crate) fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
    font_size: u32,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(("sans-serif", font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(pe)
}

/// Draws with `f` on a white `w`×`h` canvas, then writes the PNG.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    f: impl FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    super::font::register()?;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        f(root.clone())?;
        root.present().map_err(pe)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let img = image::RgbImage::from_raw(w, h, buf).context("image buffer")?;
    write_png(&img, path)
}

/// Writes `img` as a PNG, atomically (never a half-written figure).
pub fn write_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .with_context(|| format!("encoding {}", path.display()))?;
    Ok(crate::atomic::write(path, &bytes)?)
}

/// One line of a [`LineChart`].
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Points marked with an open circle (e.g. the first epoch past a threshold).
    pub markers: Vec<(f64, f64)>,
    /// Thin line (many noisy points, e.g. per-iteration b̂).
    pub thin: bool,
}

#[derive(Debug, Clone, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Dashed horizontal lines (value, label).
    pub hlines: Vec<(f64, String)>,
    /// Log10 x axis (e.g. learning rates).
    pub log_x: bool,
    /// Fixed y range; default: the data's, padded.
    pub y_range: Option<(f64, f64)>,
    /// Draw a dot at every point (few points: sweeps).
    pub dots: bool,
}

fn range(vals: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

/// A chart of f64 × f64 axes on a bitmap, as every report figure draws.
pub(crate) type XyChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The x coordinate drawn for `x` (log10 on a log axis).
fn x_of(c: &LineChart, x: f64) -> f64 {
    if c.log_x {
        x.log10()
    } else {
        x
    }
}

/// The axes' ranges, padded: x of every point; y fixed or of every point and threshold line.
fn line_ranges(c: &LineChart) -> ((f64, f64), (f64, f64)) {
    let x = range(
        c.series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| x_of(c, p.0))),
        0.03,
    );
    let y = c.y_range.unwrap_or_else(|| {
        range(
            c.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(c.hlines.iter().map(|h| h.0)),
            0.06,
        )
    });
    (x, y)
}

/// Draws a line chart to a PNG.
pub fn line_chart(path: &Path, c: &LineChart) -> Result<()> {
    let ((x0, x1), (y0, y1)) = line_ranges(c);
    render(path, (900, 600), |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(&c.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(pe)?;
        let log_x = c.log_x;
        let fmt_x = move |v: &f64| {
            if log_x {
                format!("{:.0e}", 10f64.powf(*v))
            } else {
                format!("{}", (v * 1000.0).round() / 1000.0)
            }
        };
        chart
            .configure_mesh()
            .x_desc(c.x_label.as_str())
            .y_desc(c.y_label.as_str())
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&|v| format!("{:.3}", v))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        draw_hlines(&mut chart, &c.hlines, x0, x1)?;
        for (i, s) in c.series.iter().enumerate() {
            draw_line(&mut chart, c, i, s)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight, 16)?;
        Ok(())
    })
}

/// Dashed horizontal lines across the x range `x0..x1`, each with its legend entry.
fn draw_hlines(chart: &mut XyChart<'_, '_>, hlines: &[(f64, String)], x0: f64, x1: f64) -> Result<()> {
    for (v, label) in hlines {
        let style = RGBColor(120, 120, 120).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, *v), (x1, *v)],
                10,
                6,
                style,
            ))
            .map_err(pe)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 24, y)],
                    RGBColor(120, 120, 120).stroke_width(2),
                )
            });
    }
    Ok(())
}

/// The `i`-th series of `c`: its line (finite points), dots when the chart asks for them, and
/// circles at its markers.
fn draw_line(chart: &mut XyChart<'_, '_>, c: &LineChart, i: usize, s: &Series) -> Result<()> {
    let col = color(i);
    let pts: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|p| (x_of(c, p.0), p.1))
        .collect();
    let width = if s.thin { 1 } else { 3 };
    chart
        .draw_series(LineSeries::new(pts.clone(), col.stroke_width(width)))
        .map_err(pe)?
        .label(s.label.as_str())
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3))
        });
    if c.dots {
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, col.filled())))
            .map_err(pe)?;
    }
    chart
        .draw_series(
            s.markers
                .iter()
                .map(|p| Circle::new((x_of(c, p.0), p.1), 11, col.stroke_width(3))),
        )
        .map_err(pe)?;
    Ok(())
}

/// Grouped bars: one panel per metric, one group of bars per category, one colour per group
/// (e.g. categories = backbones, groups = losses, as the paper's Fig. 6). `values[c][g]`; NaN =
/// no bar.
pub fn bar_chart(
    path: &Path,
    title: &str,
    categories: &[String],
    groups: &[String],
    metrics: &[(String, Vec<Vec<f64>>)],
) -> Result<()> {
    let n = categories.len();
    let ng = groups.len().max(1);
    let panels = metrics.len().max(1);
    let w = (200 + (60 + 55 * ng as u32) * n as u32).clamp(700, 1600);
    render(path, (w, 430 * panels as u32 + 40), |root| {
        let root = root.titled(title, ("sans-serif", 24)).map_err(pe)?;
        let areas = root.split_evenly((panels, 1));
        for (area, (name, vals)) in areas.iter().zip(metrics) {
            let (lo, hi) = range(vals.iter().flatten().copied(), 0.0);
            let span = (hi - lo).max(0.02);
            let y0 = (lo - span * 0.6).max(0.0).min(lo);
            let y1 = hi + span * 0.3;
            let mut chart = ChartBuilder::on(area)
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..n as f64, y0..y1)
                .map_err(pe)?;
            let cats = categories.to_vec();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .y_desc(name.as_str())
                // 2n+1 labels over [0, n] gives ticks every 0.5: names at the centres.
                .x_labels(2 * n + 1)
                .x_label_formatter(&move |v| {
                    let c = v - 0.5;
                    if (c - c.round()).abs() < 1e-6 && c >= -1e-6 {
                        cats.get(c.round() as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_label_formatter(&|v| format!("{:.3}", v))
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .draw()
                .map_err(pe)?;
            let bw = 0.8 / ng as f64;
            for g in 0..ng {
                let col = if ng == 1 { color(1) } else { color(g) };
                let bars: Vec<(f64, f64)> = (0..n)
                    .filter_map(|c| {
                        vals.get(c)
                            .and_then(|v| v.get(g))
                            .copied()
                            .filter(|v| v.is_finite())
                            .map(|v| (c as f64 + 0.1 + g as f64 * bw, v))
                    })
                    .collect();
                let s = chart
                    .draw_series(bars.iter().map(|&(x, v)| {
                        Rectangle::new([(x + bw * 0.06, y0), (x + bw * 0.94, v)], col.filled())
                    }))
                    .map_err(pe)?;
                if ng > 1 {
                    s.label(groups[g].as_str()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 16, y + 6)], col.filled())
                    });
                }
                chart
                    .draw_series(bars.iter().map(|&(x, v)| {
                        Text::new(
                            format!("{v:.3}"),
                            (x + bw * 0.1, v + span * 0.08),
                            ("sans-serif", if ng > 2 { 12 } else { 15 })
                                .into_font()
                                .color(&BLACK),
                        )
                    }))
                    .map_err(pe)?;
            }
            if ng > 1 {
                legend(&mut chart, SeriesLabelPosition::UpperRight, 15)?;
            }
        }
        Ok(())
    })
}

/// Predicted (x) vs MOS (y) with the fitted line y = k·x + b.
pub fn scatter(
    path: &Path,
    title: &str,
    x_label: &str,
    x: &[f64],
    mos: &[f64],
    line: Option<(f64, f64)>,
    note: &str,
) -> Result<()> {
    let (x0, x1) = range(x.iter().copied(), 0.05);
    let (y0, y1) = range(mos.iter().copied(), 0.05);
    render(path, (760, 700), |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("MOS")
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        chart
            .draw_series(
                x.iter()
                    .zip(mos)
                    .map(|(a, b)| Circle::new((*a, *b), 3, color(1).mix(0.6).filled())),
            )
            .map_err(pe)?;
        if let Some((k, b)) = line {
            chart
                .draw_series(LineSeries::new(
                    vec![(x0, k * x0 + b), (x1, k * x1 + b)],
                    color(3).stroke_width(3),
                ))
                .map_err(pe)?
                .label(format!(
                    "MOS = {k:.3}·x {} {:.3}",
                    if b < 0.0 { "−" } else { "+" },
                    b.abs()
                ))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color(3).stroke_width(3))
                });
        }
        if !note.is_empty() {
            chart
                .draw_series(std::iter::once(EmptyElement::at((x0, y1))))
                .map_err(pe)?
                .label(note)
                .legend(|_| EmptyElement::at((0, 0)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 16)?;
        Ok(())
    })
}
