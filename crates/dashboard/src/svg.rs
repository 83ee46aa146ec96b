//! Charts drawn here as SVG: no chart library to ship, nothing fetched when a page opens, and
//! every bar carries its number so a reader (or a test) can check what is drawn.

use crate::pages::{esc, human_seconds};
use baton_domain::reports::{GateCell, ReleaseRow};
use baton_domain::rules::dora::Week;
use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 22.0;

/// Deployments a week as bars, the failed ones drawn over them.
pub fn weekly_deployments(weeks: &[Week]) -> String {
    if weeks.is_empty() {
        return String::new();
    }
    let most = weeks.iter().map(|w| w.deployments).max().unwrap_or(0).max(1) as f64;
    let plot_height = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / weeks.len() as f64;
    let bar = (slot * 0.7).max(1.0);
    let total: u64 = weeks.iter().map(|w| w.deployments).sum();
    let mut out = format!(
        r#"<figure><svg class="chart weekly" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="Deployments a week: {total} in {} weeks" data-total="{total}">"#,
        weeks.len()
    );
    let base = HEIGHT - BOTTOM;
    let _ = write!(out, r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}"/>"#);
    let _ = write!(out, r#"<text x="0" y="14">{}</text><text x="0" y="{base}">0</text>"#, most as u64);
    for (i, week) in weeks.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let height = week.deployments as f64 / most * plot_height;
        let failed = week.failed_deployments as f64 / most * plot_height;
        let _ = write!(
            out,
            r#"<rect class="bar-deployments" data-week="{starts}" data-deployments="{deployments}" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{height:.1}"><title>week of {starts}: {deployments} deployments, {failed_n} failed</title></rect>"#,
            base - height,
            starts = week.starts,
            deployments = week.deployments,
            failed_n = week.failed_deployments,
        );
        if week.failed_deployments > 0 {
            let _ = write!(
                out,
                r#"<rect class="bar-failed" data-week="{}" data-failed="{}" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{failed:.1}"/>"#,
                week.starts,
                week.failed_deployments,
                base - failed
            );
        }
        // A label every few weeks keeps them from overlapping on a long window.
        if i % weeks.len().div_ceil(8).max(1) == 0 {
            let _ = write!(out, r#"<text x="{x:.1}" y="{}">{}</text>"#, HEIGHT - 6.0, week.starts.format("%d %b"));
        }
    }
    out.push_str("</svg><figcaption class=\"muted\">Deployments a week (failed in red).</figcaption></figure>");
    out
}

/// The release's waves on one time axis: each wave's deploy, then its bake.
pub fn waves(row: &ReleaseRow) -> String {
    let start = row.created_at;
    let end = row.finished_at.filter(|_| !row.open).unwrap_or(row.created_at + chrono::TimeDelta::seconds(row.duration_seconds));
    let span = (end - start).num_milliseconds().max(1) as f64;
    let lane = 22.0;
    let height = lane * row.waves.len() as f64 + 24.0;
    let label = 120.0;
    let x = |at: chrono::DateTime<chrono::Utc>| label + ((at - start).num_milliseconds().max(0) as f64 / span) * (WIDTH - label - 8.0);
    let mut out = format!(
        r#"<figure><svg class="chart waves" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="Waves of {} over {}">"#,
        esc(&row.id),
        human_seconds(span / 1000.0)
    );
    for (i, wave) in row.waves.iter().enumerate() {
        let y = i as f64 * lane + 4.0;
        let _ = write!(out, r#"<text x="0" y="{:.1}">{}</text>"#, y + 13.0, esc(&wave.name));
        let Some(started) = wave.started_at else { continue };
        let baked_from = wave.bake_started_at.unwrap_or_else(|| wave.finished_at.unwrap_or(end));
        let _ = write!(
            out,
            r#"<rect class="seg-deploy" data-wave="{}" x="{:.1}" y="{y:.1}" width="{:.1}" height="16"><title>{} deploy</title></rect>"#,
            esc(&wave.name),
            x(started),
            (x(baked_from) - x(started)).max(1.0),
            esc(&wave.name)
        );
        if let Some(bake) = wave.bake_started_at {
            let class = if wave.rolled_back_targets > 0 { "seg-rollback" } else { "seg-bake" };
            let until = wave.finished_at.unwrap_or(end);
            let _ = write!(
                out,
                r#"<rect class="{class}" data-wave="{}" x="{:.1}" y="{y:.1}" width="{:.1}" height="16"><title>{} {}</title></rect>"#,
                esc(&wave.name),
                x(bake),
                (x(until) - x(bake)).max(1.0),
                esc(&wave.name),
                wave.status.as_str()
            );
        }
    }
    let _ = write!(
        out,
        r#"<text x="{label}" y="{:.1}">0</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
        height - 4.0,
        WIDTH - 8.0,
        height - 4.0,
        human_seconds(span / 1000.0)
    );
    out.push_str(
        "</svg><figcaption class=\"muted\">Each wave's deploy (blue), then its bake (green, amber when rolled back).</figcaption></figure>",
    );
    out
}

/// A gate's kept samples on their time axis: a short green bar for each healthy one, a tall red
/// one for each unhealthy (told apart by height as well as colour).
pub fn gate_samples(wave: &str, gate: &GateCell) -> String {
    let (Some(first), Some(last)) = (gate.history.first(), gate.history.last()) else { return String::new() };
    const W: f64 = 360.0;
    const H: f64 = 30.0;
    let span = (last.at - first.at).num_milliseconds().max(1) as f64;
    // Bars a little narrower than the space a sample has, at least a pixel.
    let bar = ((W - 4.0) / gate.history.len() as f64 * 0.8).clamp(1.0, 8.0);
    let x = |at: chrono::DateTime<chrono::Utc>| 2.0 + (at - first.at).num_milliseconds() as f64 / span * (W - 4.0 - bar);
    let healthy = gate.history.iter().filter(|s| s.healthy).count();
    let mut out = format!(
        r#"<figure class="gate"><svg class="chart gate-samples" viewBox="0 0 {W} {H}" width="{W}" role="img" aria-label="{gate_name} in {wave_name}: {healthy} of {kept} samples healthy" data-wave="{wave_name}" data-gate="{gate_name}" data-kept="{kept}" data-healthy="{healthy}" data-samples="{samples}">"#,
        gate_name = esc(&gate.gate),
        wave_name = esc(wave),
        kept = gate.history.len(),
        samples = gate.samples,
    );
    for sample in &gate.history {
        let (class, height) = if sample.healthy { ("sample-healthy", 10.0) } else { ("sample-unhealthy", H - 4.0) };
        let _ = write!(
            out,
            r#"<rect class="{class}" data-healthy="{}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{height}"><title>{} {}</title></rect>"#,
            sample.healthy,
            x(sample.at),
            H - 2.0 - height,
            sample.at.format("%H:%M:%S UTC"),
            if sample.healthy { "healthy" } else { "unhealthy" },
        );
    }
    let older = if gate.samples as usize > gate.history.len() {
        format!(" (the latest {} of {})", gate.history.len(), gate.samples)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r#"</svg><figcaption class="muted">{}, {}: {healthy} of {} samples healthy{older}, over {}.</figcaption></figure>"#,
        esc(wave),
        esc(&gate.gate),
        gate.history.len(),
        human_seconds(span / 1000.0),
    );
    out
}
