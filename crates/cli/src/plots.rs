//! PNG plots for `adasamp analyze` and `adasamp eval` (plotters, bitmap backend).
//!
//! Text is rendered with plotters' pure-Rust `ab_glyph` backend from DejaVu Sans embedded in the
//! binary (the `dejavu` crate), so plots look the same on every machine and need no system fonts
//! or fontconfig.

use std::path::Path;
use std::sync::Once;

use adasamp_nets::analysis::{format_value, PositionStats, TokenProbs};
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Font family name the embedded font is registered under (plotters' default family).
const FONT: &str = "sans-serif";
/// Raw (base model) probabilities.
const RAW_COLOR: RGBColor = RGBColor(140, 140, 140);
/// Target (pipeline) probabilities.
const TARGET_COLOR: RGBColor = RGBColor(31, 119, 180);
/// Learned sampler probabilities.
const PRED_COLOR: RGBColor = RGBColor(255, 127, 14);
/// Smallest probability the log axis of a position plot reaches.
const PROB_FLOOR: f64 = 1e-12;
/// The sampled token's label.
const SAMPLED_COLOR: RGBColor = RGBColor(200, 30, 30);

static FONT_INIT: Once = Once::new();

/// Registers the embedded DejaVu Sans once per process.
fn ensure_font() -> Result<()> {
    let mut ok = true;
    FONT_INIT.call_once(|| {
        ok = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded plot font could not be parsed"))
    }
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// A token string with whitespace made visible (`␣` space, `↵` newline, `⇥` tab, `␍` carriage
/// return, `\xNN` other control characters, `∅` empty), cut to `max_chars` characters with `…`.
pub fn visible_token(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            ' ' => out.push('␣'),
            '\n' => out.push('↵'),
            '\t' => out.push('⇥'),
            '\r' => out.push('␍'),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return "∅".into();
    }
    if out.chars().count() > max_chars {
        let cut: String = out.chars().take(max_chars.saturating_sub(1)).collect();
        return format!("{cut}…");
    }
    out
}

/// One bar series: legend label, colour, the probability it shows.
type Bars = (&'static str, RGBColor, fn(&TokenProbs) -> f64);

/// What one per-position plot shows.
pub struct PositionPlot<'a> {
    /// Position index (0 = first generated token).
    pub index: usize,
    /// The sampled token's id.
    pub sampled: u32,
    /// The sampled token's visible text.
    pub sampled_text: &'a str,
    /// The position's statistics.
    pub stats: &'a PositionStats,
    /// The tokens to show (descending raw probability) with their visible labels.
    pub tokens: &'a [(TokenProbs, String)],
}

/// Grouped bars of raw / target / predicted probability per token on a log y axis, token strings
/// under the bars (the sampled token in red), a `×` under the target bar of truncated tokens.
pub fn position_plot(path: &Path, p: &PositionPlot<'_>) -> Result<()> {
    ensure_font()?;
    let (width, height) = (1400u32, 760u32);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let n = p.tokens.len().max(1);
    // Lower bound of the log axis: a decade under the smallest shown non-zero probability, but
    // not below PROB_FLOOR (smaller values are marked with a triangle at the bottom).
    let smallest = p
        .tokens
        .iter()
        .flat_map(|(t, _)| [t.raw, t.target, t.pred])
        .filter(|&v| v > 0.0)
        .fold(1.0f64, f64::min);
    let y_min = 10f64.powf((smallest.max(PROB_FLOOR)).log10().floor() - 0.3);
    let title = format!(
        "position {} · sampled “{}” (id {}) · KL(target‖raw) {} · KL(target‖sampler) {} · target keeps {} of {}",
        p.index,
        p.sampled_text,
        p.sampled,
        format_value(p.stats.kl_identity),
        format_value(p.stats.kl_sampler),
        p.stats.kept,
        p.stats.vocab
    );
    let subtitle = format!(
        "mass on truncated tokens: raw {} · sampler {}",
        format_value(p.stats.mass_identity),
        format_value(p.stats.mass_sampler)
    );
    let (header, body) = root.split_vertically(58);
    header
        .draw(&Text::new(
            title,
            (width as i32 / 2, 8),
            TextStyle::from((FONT, 19).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(draw_err(path))?;
    header
        .draw(&Text::new(
            subtitle,
            (width as i32 / 2, 34),
            TextStyle::from((FONT, 15).into_font())
                .color(&RGBColor(80, 80, 80))
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(draw_err(path))?;

    // Room for the longest rotated token label (~9 px per character at size 15).
    let longest = p
        .tokens
        .iter()
        .map(|(_, l)| l.chars().count())
        .max()
        .unwrap_or(1);
    let label_area = (longest as u32 * 9 + 24).clamp(40, 190);
    let mut chart = ChartBuilder::on(&body)
        .margin_left(10)
        .margin_right(20)
        .margin_top(6)
        .x_label_area_size(label_area)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (y_min..1.0f64).log_scale())
        .map_err(draw_err(path))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("probability (log scale)")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw_err(path))?;

    let series: [Bars; 3] = [
        ("raw (base model)", RAW_COLOR, |t| t.raw),
        ("target (pipeline)", TARGET_COLOR, |t| t.target),
        ("learned sampler", PRED_COLOR, |t| t.pred),
    ];
    // The sampled token's column on a light red band.
    if let Some(i) = p.tokens.iter().position(|(t, _)| t.id == p.sampled) {
        let band = SAMPLED_COLOR.mix(0.14);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(i as f64 - 0.48, y_min), (i as f64 + 0.48, 1.0)],
                band.filled(),
            )))
            .map_err(draw_err(path))?
            .label("sampled token")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], band.filled()));
    }
    let bar = 0.26;
    for (s, &(label, color, get)) in series.iter().enumerate() {
        let offset = (s as f64 - 1.0) * bar;
        let rects = p.tokens.iter().enumerate().filter_map(|(i, (t, _))| {
            let v = get(t);
            let x = i as f64 + offset;
            (v > y_min).then(|| {
                Rectangle::new(
                    [(x - bar / 2.0 + 0.01, y_min), (x + bar / 2.0 - 0.01, v)],
                    color.filled(),
                )
            })
        });
        chart
            .draw_series(rects)
            .map_err(draw_err(path))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    // Probabilities under the axis (but not truncated target entries): a downward triangle.
    let (tri_top, tri_bottom) = (y_min * 10f64.powf(0.4), y_min * 10f64.powf(0.05));
    let triangles: Vec<_> = series
        .iter()
        .enumerate()
        .flat_map(|(s, &(_, color, get))| {
            let offset = (s as f64 - 1.0) * bar;
            p.tokens.iter().enumerate().filter_map(move |(i, (t, _))| {
                let v = get(t);
                let truncated = s == 1 && v == 0.0;
                let x = i as f64 + offset;
                (v <= y_min && !truncated).then(|| {
                    Polygon::new(
                        vec![
                            (x - bar / 2.5, tri_top),
                            (x + bar / 2.5, tri_top),
                            (x, tri_bottom),
                        ],
                        color.filled(),
                    )
                })
            })
        })
        .collect();
    if !triangles.is_empty() {
        let below = format!("p below the axis ({:.0e})", y_min);
        chart
            .draw_series(triangles)
            .map_err(draw_err(path))?
            .label(below)
            .legend(|(x, y)| {
                Polygon::new(
                    vec![(x, y - 6), (x + 14, y - 6), (x + 7, y + 6)],
                    BLACK.filled(),
                )
            });
    }
    // Truncated tokens: a cross where the target bar would stand.
    let y_cross = y_min * 10f64.powf(0.15);
    chart
        .draw_series(
            p.tokens
                .iter()
                .enumerate()
                .filter(|(_, (t, _))| t.target == 0.0)
                .map(|(i, _)| Cross::new((i as f64, y_cross), 5, TARGET_COLOR.stroke_width(2))),
        )
        .map_err(draw_err(path))?
        .label("truncated by the target")
        .legend(|(x, y)| Cross::new((x + 7, y), 5, TARGET_COLOR.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()
        .map_err(draw_err(path))?;

    // Token labels under the bars, rotated, read bottom-up.
    for (i, (t, label)) in p.tokens.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, y_min));
        let color = if t.id == p.sampled {
            SAMPLED_COLOR
        } else {
            BLACK
        };
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&color)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(label.clone(), (px, py + 8), style))
            .map_err(draw_err(path))?;
    }
    root.present().map_err(draw_err(path))?;
    Ok(())
}

fn series_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    path: &Path,
    caption: &str,
    y_desc: &str,
    series: [(&str, RGBColor, Vec<f64>); 2],
) -> Result<()> {
    let n = series[0].2.len();
    let finite_max = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Head room above the data for the legend.
    let y_max = if finite_max > 0.0 {
        finite_max * 1.35
    } else {
        1.0
    };
    let infinite = series
        .iter()
        .flat_map(|s| s.2.iter())
        .filter(|v| !v.is_finite())
        .count();
    let caption = if infinite > 0 {
        format!("{caption} ({infinite} infinite values drawn at the top edge)")
    } else {
        caption.to_string()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 19))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5).max(0.5), 0f64..y_max)
        .map_err(draw_err(path))?;
    chart
        .configure_mesh()
        .x_desc("position (generated token index)")
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_labels(n.clamp(2, 33))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw_err(path))?;
    for (label, color, values) in series {
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64, if v.is_finite() { v } else { y_max }))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(draw_err(path))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err(path))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()
        .map_err(draw_err(path))?;
    Ok(())
}

/// Two panels over positions: `KL(target ‖ ·)` (top) and the mass on truncated tokens (bottom),
/// identity (raw logits) vs the learned sampler.
pub fn summary_plot(path: &Path, stats: &[PositionStats]) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (1200, 860)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let (top, bottom) = root.split_vertically(430);
    series_panel(
        &top,
        path,
        "KL(target ‖ predictor) per position",
        "KL (nats)",
        [
            (
                "identity (raw logits)",
                RAW_COLOR,
                stats.iter().map(|s| s.kl_identity).collect(),
            ),
            (
                "learned sampler",
                PRED_COLOR,
                stats.iter().map(|s| s.kl_sampler).collect(),
            ),
        ],
    )?;
    series_panel(
        &bottom,
        path,
        "predicted probability mass on tokens the target truncated",
        "mass",
        [
            (
                "identity (raw logits)",
                RAW_COLOR,
                stats.iter().map(|s| s.mass_identity).collect(),
            ),
            (
                "learned sampler",
                PRED_COLOR,
                stats.iter().map(|s| s.mass_sampler).collect(),
            ),
        ],
    )?;
    root.present().map_err(draw_err(path))?;
    Ok(())
}

/// Colour of the contender under test on the eval plots.
const UNDER_TEST_COLOR: RGBColor = RGBColor(255, 127, 14);
/// Colour of the other contenders.
const OTHER_COLOR: RGBColor = RGBColor(31, 119, 180);

/// `lo..hi` widened by 12 % of its span on both sides (a unit span when empty).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = if hi > lo { hi - lo } else { 1.0 };
    (lo - 0.12 * span)..(hi + 0.12 * span)
}

/// The chart type of the eval plots.
type EvalChart<'a> =
    ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One contender on an eval plot: its rating interval at `x` as a vertical bar with caps `cap`
/// wide on each side, its rating as a dot, `label` beside it; orange for the contender under
/// test, blue for the others.
fn rating_mark(
    chart: &mut EvalChart<'_>,
    path: &Path,
    under_test: bool,
    x: f64,
    rating: &adasamp_eval::Interval,
    cap: f64,
    label: String,
) -> Result<()> {
    let color = if under_test {
        UNDER_TEST_COLOR
    } else {
        OTHER_COLOR
    };
    let style = color.stroke_width(2);
    let (lo, hi) = (rating.lo, rating.hi);
    chart
        .draw_series([
            PathElement::new(vec![(x, lo), (x, hi)], style),
            PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
            PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
        ])
        .map_err(draw_err(path))?;
    chart
        .draw_series(std::iter::once(Circle::new(
            (x, rating.value),
            6,
            color.filled(),
        )))
        .map_err(draw_err(path))?;
    chart
        .draw_series(std::iter::once(Text::new(
            label,
            (x + 1.2 * cap, rating.value),
            (FONT, 15).into_font(),
        )))
        .map_err(draw_err(path))?;
    Ok(())
}

/// The eval's rating plot: each contender's Bradley–Terry rating (point) with its 95 %
/// bootstrap interval (bar), the contender under test in orange, a line at 0 (the mean).
pub fn rating_plot(path: &Path, report: &adasamp_eval::EvalReport) -> Result<()> {
    ensure_font()?;
    let cs = &report.contenders;
    let n = cs.len().max(1);
    let lo = cs
        .iter()
        .map(|c| c.rating.lo.min(c.rating.value))
        .fold(0.0f64, f64::min);
    let hi = cs
        .iter()
        .map(|c| c.rating.hi.max(c.rating.value))
        .fold(0.0f64, f64::max);
    let root = BitMapBackend::new(path, (200 + 160 * n as u32, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Bradley–Terry rating among contenders, 95 % bootstrap CI ({} prompts × {} seeds)",
                report.prompts, report.seeds
            ),
            (FONT, 18),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), padded(lo, hi))
        .map_err(draw_err(path))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("rating (log-odds of the judge's preference; mean 0)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw_err(path))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            RGBColor(150, 150, 150).stroke_width(1),
        )))
        .map_err(draw_err(path))?;
    for (i, c) in cs.iter().enumerate() {
        let label = format!("{:+.2}", c.rating.value);
        rating_mark(&mut chart, path, i == 0, i as f64, &c.rating, 0.08, label)?;
    }
    root.present().map_err(draw_err(path))?;
    Ok(())
}

/// The eval's quality-vs-diversity scatter: one point per contender, x its embedding entropy
/// across seeds (bits), y its rating with the 95 % interval, labelled with its name. `false`
/// (nothing drawn) when no contender has an embedding entropy (a single seed).
pub fn quality_diversity_plot(path: &Path, report: &adasamp_eval::EvalReport) -> Result<bool> {
    let pts: Vec<(usize, f64)> = report
        .contenders
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.embedding_entropy.map(|e| (i, e)))
        .collect();
    if pts.is_empty() {
        return Ok(false);
    }
    ensure_font()?;
    let cs = &report.contenders;
    let xs = pts.iter().map(|&(_, e)| e);
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let lo = pts
        .iter()
        .map(|&(i, _)| cs[i].rating.lo)
        .fold(0.0f64, f64::min);
    let hi = pts
        .iter()
        .map(|&(i, _)| cs[i].rating.hi)
        .fold(0.0f64, f64::max);
    let x_range = padded(x_lo, x_hi);
    let cap = 0.01 * (x_range.end - x_range.start);
    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("quality vs diversity, one point per contender", (FONT, 19))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, padded(lo, hi))
        .map_err(draw_err(path))?;
    chart
        .configure_mesh()
        .x_desc("embedding entropy across seeds (bits; higher = more diverse)")
        .y_desc("Bradley–Terry rating (95 % CI)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(draw_err(path))?;
    for &(i, x) in &pts {
        let c = &cs[i];
        rating_mark(&mut chart, path, i == 0, x, &c.rating, cap, c.name.clone())?;
    }
    root.present().map_err(draw_err(path))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_tokens() {
        assert_eq!(visible_token(" the", 16), "␣the");
        assert_eq!(visible_token("\n\n", 16), "↵↵");
        assert_eq!(visible_token("\t\u{1}", 16), "⇥\\x01");
        assert_eq!(visible_token("", 16), "∅");
        assert_eq!(visible_token("abcdefgh", 5), "abcd…");
    }
}
