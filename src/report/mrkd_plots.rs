//! Plots of an MRKD experiment (plotters, bitmap backend; text through a system TrueType font):
//! - `per_type_srcc.png`: final test SRCC per distortion type (or overall), baseline vs URKD vs
//!   MRKD (student models), mean over seeds with ±std whiskers;
//! - `fig1_per_type_srcc_per_epoch.png`: the paper's Fig. 1 observation — per-epoch, per-type test
//!   SRCC of the large-rate and the small-rate model trained alone (the λ = 0 run), first seed;
//! - `fig1_violins.png`: the same as the paper draws it — per epoch, a violin of the per-type
//!   test SRCC (its spread across distortion types) of the large-rate and the small-rate model;
//! - `curves.png`: per-epoch overall test SRCC of every model, mean over seeds.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plots::XyChart;
use crate::distill::results::{ExperimentResults, Selection, SummaryRow};
use crate::distill::Variant;

const COLORS: [RGBColor; 3] = [
    RGBColor(120, 120, 120),
    RGBColor(70, 130, 200),
    RGBColor(220, 90, 40),
];

/// Writes the bitmap as a PNG, atomically (src/atomic.rs).
fn save(buf: Vec<u8>, w: u32, h: u32, path: &Path) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("bad buffer"))?;
    super::plots::write_png(&img, path)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

/// Writes every plot that the results support.
pub fn all(res: &ExperimentResults, out: &Path) -> Result<()> {
    crate::report::font::register()?;
    per_type_bars(res, &out.join("per_type_srcc.png"))?;
    if res.runs.iter().any(|r| r.variant == Variant::Baseline)
        && res.runs[0]
            .results
            .first()
            .is_some_and(|r| !r.history[0].eval[0].test_per_type.is_empty())
    {
        fig1(res, &out.join("fig1_per_type_srcc_per_epoch.png"))?;
        fig1_violins(res, &out.join("fig1_violins.png"))?;
    }
    curves(res, &out.join("curves.png"))?;
    Ok(())
}

/// Per group ("overall", then each type by the baseline's SRCC, hardest first): the (mean, std)
/// SRCC of each of `rows` (baseline, URKD, MRKD student), NaN where a row or type is missing.
type BarGroups = Vec<(String, Vec<(f64, f64)>)>;

/// The groups of [`per_type_bars`] from the final-epoch student rows (`rows`: baseline, URKD,
/// MRKD; the types are the baseline's, else the first row's).
fn bar_groups(rows: &[Option<&SummaryRow>]) -> Result<BarGroups> {
    let any = rows
        .iter()
        .flatten()
        .next()
        .ok_or_else(|| anyhow!("no rows"))?;
    // Types sorted by the baseline's SRCC (hardest first), else "overall".
    let mut groups: BarGroups = Vec::new();
    let key_row = rows[0].unwrap_or(any);
    let mut types: Vec<(String, f64)> = key_row
        .per_type_srcc
        .iter()
        .map(|(t, m)| (t.clone(), m.mean))
        .collect();
    types.sort_by(|a, b| a.1.total_cmp(&b.1));
    groups.push((
        "overall".into(),
        rows.iter().map(|r| bar_cell(*r, None)).collect(),
    ));
    for (t, _) in &types {
        groups.push((t.clone(), rows.iter().map(|r| bar_cell(*r, Some(t))).collect()));
    }
    Ok(groups)
}

/// The (mean, std) SRCC of row `r` on type `t` (overall without a type).
fn bar_cell(r: Option<&SummaryRow>, t: Option<&str>) -> (f64, f64) {
    match (r, t) {
        (Some(r), Some(t)) => r
            .per_type_srcc
            .get(t)
            .map_or((f64::NAN, 0.0), |m| (m.mean, m.std)),
        (Some(r), None) => (r.test_srcc.mean, r.test_srcc.std),
        _ => (f64::NAN, 0.0),
    }
}

/// The y axis' floor: 0, or the lowest whisker rounded down to a tenth when it is negative.
fn bars_floor(groups: &BarGroups) -> f64 {
    let lo = groups
        .iter()
        .flat_map(|g| g.1.iter().map(|v| v.0 - v.1))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::min);
    if lo >= 0.0 {
        0.0
    } else {
        (lo * 10.0).floor() / 10.0
    }
}

/// Grouped bars: per type (or "overall"), baseline / URKD / MRKD student, final epoch.
pub fn per_type_bars(res: &ExperimentResults, path: &Path) -> Result<()> {
    let variants = [Variant::Baseline, Variant::Urkd, Variant::Mrkd];
    let rows: Vec<Option<&SummaryRow>> = variants
        .iter()
        .map(|&v| res.row(v, 1, Selection::Final))
        .collect();
    let groups = bar_groups(&rows)?;
    let ymin = bars_floor(&groups);
    let (w, h) = ((160 + 46 * groups.len() as u32).max(820), 560u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = groups.len() as f64;
        let title = format!(
            "{}: final-epoch test SRCC (student / small-lr model), mean ± std over {} seeds",
            res.dataset,
            res.experiment.seeds.len()
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(170)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..n, ymin..1.0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("SRCC")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for (vi, v) in variants.iter().enumerate() {
            if rows[vi].is_some() {
                draw_variant_bars(&mut chart, &groups, vi, *v, ymin)?;
            }
        }
        crate::report::plots::legend(&mut chart, SeriesLabelPosition::LowerRight, 14)?;
        // Group names, rotated, under the axis.
        let style = TextStyle::from(("sans-serif", 13).into_font())
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (gi, (name, _)) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, ymin));
            root.draw(&Text::new(name.clone(), (px, py + 8), style.clone()))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    save(buf, w, h, path)
}

/// The bars (with their legend entry) and ±std whiskers of variant `v`, the `vi`-th of each
/// group.
fn draw_variant_bars(
    chart: &mut XyChart<'_, '_>,
    groups: &BarGroups,
    vi: usize,
    v: Variant,
    ymin: f64,
) -> Result<()> {
    let color = COLORS[vi];
    let bars = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.1[vi].0.is_finite())
        .map(move |(gi, g)| {
            let x0 = gi as f64 + 0.1 + 0.27 * vi as f64;
            Rectangle::new(
                [(x0, ymin.max(0.0).min(g.1[vi].0)), (x0 + 0.25, g.1[vi].0)],
                color.filled(),
            )
        });
    chart
        .draw_series(bars)
        .map_err(err)?
        .label(match v {
            Variant::Baseline => "baseline (small lr alone)",
            Variant::Urkd => "URKD",
            Variant::Mrkd => "MRKD student",
        })
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
        });
    let whiskers = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.1[vi].0.is_finite() && g.1[vi].1 > 0.0)
        .map(move |(gi, g)| {
            let xc = gi as f64 + 0.1 + 0.27 * vi as f64 + 0.125;
            PathElement::new(
                vec![
                    (xc, g.1[vi].0 - g.1[vi].1),
                    (xc, (g.1[vi].0 + g.1[vi].1).min(1.0)),
                ],
                BLACK.stroke_width(1),
            )
        });
    chart.draw_series(whiskers).map_err(err)?;
    Ok(())
}

fn palette(i: usize, n: usize) -> RGBColor {
    let c = HSLColor(i as f64 / n.max(1) as f64 * 0.9, 0.75, 0.45);
    let (r, g, b) = c.rgb();
    RGBColor(r, g, b)
}

/// Fig. 1: per-epoch per-type test SRCC of the large-lr and the small-lr model alone.
pub fn fig1(res: &ExperimentResults, path: &Path) -> Result<()> {
    let Some(vr) = res.runs.iter().find(|r| r.variant == Variant::Baseline) else {
        bail!("no baseline run")
    };
    let run = &vr.results[0];
    let types: Vec<String> = run.history[0].eval[0]
        .test_per_type
        .keys()
        .cloned()
        .collect();
    let (w, h) = (1400u32, 620u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (main, legend) = root.split_horizontally(1100);
        let panels = main.split_evenly((1, 2));
        let epochs = run.history.len() as f64;
        let lo = run
            .history
            .iter()
            .flat_map(|r| {
                r.eval
                    .iter()
                    .flat_map(|e| e.test_per_type.values().copied())
            })
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::min);
        let ymin = ((lo.min(0.0)) * 10.0).floor() / 10.0;
        for (k, panel) in panels.iter().enumerate() {
            let spread: Vec<f64> = run
                .history
                .iter()
                .map(|r| {
                    let v: Vec<f64> = r.eval[k]
                        .test_per_type
                        .values()
                        .copied()
                        .filter(|v| v.is_finite())
                        .collect();
                    super::stats::MeanStd::of(&v).std
                })
                .collect();
            let title = format!(
                "{} (lr {}): per-type SRCC; std across types, last epoch {:.3}",
                if k == 0 {
                    "large-lr model"
                } else {
                    "small-lr model"
                },
                vr.config.member(k).lr,
                spread.last().copied().unwrap_or(f64::NAN)
            );
            draw_type_panel(panel, &title, &types, run, k, epochs, ymin)?;
        }
        // Legend: one entry per type.
        let n = types.len().max(1);
        for (i, t) in types.iter().enumerate() {
            let y = 40 + (i as i32) * ((h as i32 - 80) / n as i32).min(22);
            legend
                .draw(&PathElement::new(
                    vec![(10, y), (40, y)],
                    palette(i, n).stroke_width(2),
                ))
                .map_err(err)?;
            legend
                .draw(&Text::new(t.clone(), (46, y - 7), ("sans-serif", 13)))
                .map_err(err)?;
        }
        let y = 40 + (n as i32) * ((h as i32 - 80) / n as i32).min(22);
        legend
            .draw(&PathElement::new(
                vec![(10, y), (40, y)],
                BLACK.stroke_width(4),
            ))
            .map_err(err)?;
        legend
            .draw(&Text::new(
                "mean over types",
                (46, y - 7),
                ("sans-serif", 13),
            ))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    save(buf, w, h, path)
}

fn draw_type_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    types: &[String],
    run: &crate::distill::PairResult,
    k: usize,
    epochs: f64,
    ymin: f64,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..epochs.max(2.0), ymin..1.0f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("test SRCC")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let n = types.len();
    for (i, t) in types.iter().enumerate() {
        let pts: Vec<(f64, f64)> = run
            .history
            .iter()
            .filter_map(|r| {
                r.eval[k]
                    .test_per_type
                    .get(t)
                    .copied()
                    .filter(|v| v.is_finite())
                    .map(|v| (r.epoch as f64, v))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, palette(i, n).stroke_width(1)))
            .map_err(err)?;
    }
    let mean: Vec<(f64, f64)> = run
        .history
        .iter()
        .map(|r| {
            let v: Vec<f64> = r.eval[k].test_per_type.values().copied().collect();
            (r.epoch as f64, super::stats::MeanStd::of(&v).mean)
        })
        .collect();
    chart
        .draw_series(LineSeries::new(mean, BLACK.stroke_width(3)))
        .map_err(err)?;
    Ok(())
}

/// Per-epoch overall test SRCC of every model, mean over seeds.
pub fn curves(res: &ExperimentResults, path: &Path) -> Result<()> {
    let (w, h) = (900u32, 560u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut series: Vec<(String, RGBColor, bool, Vec<(f64, f64)>)> = Vec::new();
        for vr in &res.runs {
            let vi = match vr.variant {
                Variant::Baseline => 0,
                Variant::Urkd => 1,
                Variant::Mrkd => 2,
            };
            for k in 0..2 {
                let epochs = vr.results[0].history.len();
                let pts: Vec<(f64, f64)> = (0..epochs)
                    .map(|e| {
                        let v: Vec<f64> = vr
                            .results
                            .iter()
                            .map(|r| r.history[e].eval[k].test.srocc)
                            .collect();
                        ((e + 1) as f64, super::stats::MeanStd::of(&v).mean)
                    })
                    .collect();
                series.push((
                    format!("{} (lr {})", vr.variant.label(k), vr.config.member(k).lr),
                    COLORS[vi],
                    k == 0,
                    pts,
                ));
            }
        }
        let vals = series
            .iter()
            .flat_map(|s| s.3.iter().map(|p| p.1))
            .filter(|v| v.is_finite());
        let lo = vals.clone().fold(1.0f64, f64::min);
        let hi = vals.fold(0.0f64, f64::max);
        let epochs = series.iter().map(|s| s.3.len()).max().unwrap_or(1) as f64;
        let span = (hi - lo).max(0.02);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: test SRCC per epoch (mean over seeds)", res.dataset),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                1f64..epochs.max(2.0),
                (lo - 0.1 * span)..(hi + 0.05 * span).min(1.0),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("test SRCC")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (name, color, dashed, pts) in series {
            let style = color.stroke_width(if dashed { 1 } else { 3 });
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 18, y)],
                        color.stroke_width(if dashed { 1 } else { 3 }),
                    )
                });
        }
        crate::report::plots::legend(&mut chart, SeriesLabelPosition::LowerRight, 13)?;
        root.present().map_err(err)?;
    }
    save(buf, w, h, path)
}

/// Gaussian kernel density of `v` at `y` (Silverman's bandwidth, at least 0.01).
fn density(v: &[f64], y: f64) -> f64 {
    let s = super::stats::MeanStd::of(v).std;
    let bw = (1.06 * s * (v.len() as f64).powf(-0.2)).max(0.01);
    let k: f64 = v.iter().map(|x| (-0.5 * ((y - x) / bw).powi(2)).exp()).sum();
    k / (v.len() as f64 * bw * (2.0 * std::f64::consts::PI).sqrt())
}

/// Fig. 1 as the paper draws it: per epoch, a violin of the per-type test SRCC of the large-rate
/// (left, blue) and the small-rate model (right, orange) trained alone (λ = 0), first seed; the
/// dot is the median. A wide violin: the types disagree (the paper's "different distortion types
/// are learnt at different paces").
pub fn fig1_violins(res: &ExperimentResults, path: &Path) -> Result<()> {
    let Some(vr) = res.runs.iter().find(|r| r.variant == Variant::Baseline) else {
        bail!("no baseline run")
    };
    let run = &vr.results[0];
    let values = |r: &crate::distill::mrkd::EpochRecord, k: usize| -> Vec<f64> {
        r.eval[k].test_per_type.values().copied().filter(|v| v.is_finite()).collect()
    };
    let lo = run.history.iter().flat_map(|r| [values(r, 0), values(r, 1)].concat()).fold(1.0f64, f64::min);
    let ymin = ((lo.min(0.0)) * 10.0).floor() / 10.0;
    let (w, h) = (1200u32, 560u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let epochs = run.history.len() as f64;
        let title = format!(
            "Per-type test SRCC per epoch: large lr {} (blue) vs small lr {} (orange), alone",
            vr.config.member(0).lr,
            vr.config.member(1).lr
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.4f64..epochs + 0.6, ymin..1.0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_desc("epoch")
            .y_desc("test SRCC per distortion type")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for r in &run.history {
            for (k, side) in [(0usize, -1.0f64), (1, 1.0)] {
                let v = values(r, k);
                if v.len() < 2 {
                    continue;
                }
                // The violin spans the values (no tails beyond the lowest and highest type).
                let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                let grid: Vec<f64> = (0..=60).map(|i| lo + (hi - lo) * i as f64 / 60.0).collect();
                let d: Vec<f64> = grid.iter().map(|&y| density(&v, y)).collect();
                let peak = d.iter().copied().fold(0.0, f64::max).max(1e-12);
                let x0 = r.epoch as f64 + side * 0.2;
                let mut pts: Vec<(f64, f64)> =
                    grid.iter().zip(&d).map(|(&y, &dy)| (x0 + 0.18 * dy / peak, y)).collect();
                pts.extend(grid.iter().zip(&d).rev().map(|(&y, &dy)| (x0 - 0.18 * dy / peak, y)));
                let color = COLORS[k + 1];
                chart.draw_series(std::iter::once(Polygon::new(pts, color.mix(0.45).filled()))).map_err(err)?;
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[sorted.len() / 2];
                chart
                    .draw_series(std::iter::once(Circle::new((x0, median), 3, BLACK.filled())))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    save(buf, w, h, path)
}
