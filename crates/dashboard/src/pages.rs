//! The views as HTML. Every value from the store or the catalog is escaped: a service name, a
//! commit message or a failure cause can hold markup. The `data-*` attributes carry the figures
//! as numbers, for scripts and the browser tests.

use crate::svg;
use crate::{HISTORY_EVENTS, Site, slug};
use baton_domain::catalog::ServiceEntry;
use baton_domain::ports::StoreError;
use baton_domain::reports::{self, GroupReport, NowReport, ReleaseReport, ReleaseRow, ServiceReport};
use baton_domain::rules::dora::{Band, Durations, Figures};
use baton_domain::text::counted;
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

const CSS: &str = include_str!("../assets/dashboard.css");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
/// Services a group's table shows (the rest are linked by name): a page stays light for 2,000.
const GROUP_ROWS: usize = 50;

pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Only http(s) links are drawn as links: a `javascript:` URL in a record must not run.
fn link(url: Option<&str>, text: &str) -> String {
    match url.filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
        Some(url) => format!(r#"<a href="{}" rel="noopener noreferrer">{}</a>"#, esc(url), esc(text)),
        None => String::new(),
    }
}

fn up(depth: usize) -> String {
    "../".repeat(depth)
}

fn layout(site: &Site, title: &str, depth: usize, main: &str) -> String {
    let root = up(depth);
    let mut teams = String::new();
    for team in site.teams() {
        let _ = write!(teams, r#"<a href="{root}teams/{}.html">{}</a>"#, slug(team), esc(team));
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Baton</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body data-refresh-seconds="{refresh}">
<header><span class="brand">Baton</span><nav aria-label="views"><a href="{root}index.html">Now</a><a href="{root}organisation.html">Organisation</a>{teams}</nav></header>
<main>
{main}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        title = esc(title),
        refresh = site.refresh_seconds,
    )
}

fn time(at: DateTime<Utc>) -> String {
    format!(r#"<time datetime="{}">{}</time>"#, at.to_rfc3339(), at.format("%Y-%m-%d %H:%M:%S UTC"))
}

fn opt_time(at: Option<DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_default()
}

pub fn human_seconds(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn status(text: &str) -> String {
    format!(r#"<span class="status status-{}">{}</span>"#, esc(&text.replace(' ', "-")), esc(text))
}

fn short(sha: Option<&str>) -> String {
    sha.map(|s| format!("<code>{}</code>", esc(&s[..s.len().min(12)]))).unwrap_or_else(|| "-".into())
}

fn wave_chips(row: &ReleaseRow) -> String {
    let mut out = String::from(r#"<span class="waves">"#);
    for wave in &row.waves {
        let name = wave.status.as_str();
        let _ = write!(
            out,
            r#"<span class="wave status-{}" title="{}: {}" data-wave="{}" data-status="{}"></span>"#,
            name.replace(' ', "-"),
            esc(&wave.name),
            name,
            esc(&wave.name),
            name
        );
    }
    out.push_str("</span>");
    out
}

fn release_link(row: &ReleaseRow, depth: usize) -> String {
    format!(r#"<a href="{}releases/{}.html">{}</a>"#, up(depth), slug(&row.id), esc(&row.id))
}

/// The release's Slack message, when the notifier kept its permalink.
fn slack_link(row: &ReleaseRow) -> String {
    match link(row.slack_thread.as_deref(), "Slack thread") {
        a if a.is_empty() => a,
        a => format!(r#" <span class="slack-thread">{a}</span>"#),
    }
}

/// What the release's execution cost at AWS's public prices, its counts on hover; `-` until counted.
fn cost(row: &ReleaseRow) -> String {
    match &row.cost {
        Some(cost) => format!(
            r#"<span class="cost" data-dollars="{}" title="{} state transitions, {} task invocations, {:.2} Lambda GB-s">${:.4}</span>"#,
            cost.dollars, cost.transitions, cost.invocations, cost.lambda_gb_seconds, cost.dollars
        ),
        None => "-".to_owned(),
    }
}

fn service_link(service: &str, depth: usize) -> String {
    format!(r#"<a href="{}services/{}.html">{}</a>"#, up(depth), slug(service), esc(service))
}

/// A table of releases, one row each.
fn release_table(rows: &[ReleaseRow], depth: usize, with_service: bool, id: &str) -> String {
    if rows.is_empty() {
        return r#"<p class="muted">None.</p>"#.to_owned();
    }
    let mut out = format!(r#"<div class="table-wrap"><table id="{id}"><thead><tr>"#);
    if with_service {
        out.push_str("<th>service</th>");
    }
    out.push_str(r#"<th>status</th><th>stage</th><th>waves</th><th>commit</th><th class="hide-narrow">branch</th><th class="hide-narrow">trigger</th><th>build</th><th>started</th><th>duration</th><th class="hide-narrow">cost</th><th class="hide-narrow">release</th></tr></thead><tbody>"#);
    for row in rows {
        let _ = write!(out, r#"<tr data-release="{}" data-status="{}">"#, esc(&row.id), row.status.as_str());
        if with_service {
            let _ = write!(out, "<td>{}</td>", service_link(&row.service, depth));
        }
        let stage = match (&row.current_wave, row.open) {
            (Some(wave), _) => format!("{} {}", esc(&row.stage), esc(wave)),
            (None, _) => esc(&row.stage),
        };
        let bake = row
            .waves
            .iter()
            .filter(|w| row.open && w.status == baton_domain::release::WaveStatus::Baking)
            .filter_map(|w| w.bake_ends_at)
            .map(|at| {
                format!(r#" <span class="muted" data-ends-at="{}">bakes until {}</span>"#, at.to_rfc3339(), at.format("%H:%M:%S UTC"))
            })
            .next()
            .unwrap_or_default();
        let build = row.build.as_ref().map(|b| {
            let label = format!("{} {}", b.provider, b.status);
            match b.url.as_deref() {
                Some(_) => link(b.url.as_deref(), &label),
                None => esc(&label),
            }
        });
        let _ = write!(
            out,
            r#"<td>{}</td><td>{stage}{bake}</td><td>{}</td><td>{}</td><td class="hide-narrow">{}</td><td class="hide-narrow">{}</td><td>{}</td><td>{}</td><td data-seconds="{}">{}</td><td class="hide-narrow">{}</td><td class="hide-narrow">{}{}</td></tr>"#,
            status(row.status.as_str()),
            wave_chips(row),
            short(row.sha.as_deref()),
            esc(&row.branch),
            esc(&row.trigger),
            build.unwrap_or_default(),
            time(row.created_at),
            row.duration_seconds,
            human_seconds(row.duration_seconds as f64),
            cost(row),
            release_link(row, depth),
            slack_link(row),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

pub fn now(site: &Site, report: &NowReport) -> String {
    let mut main = String::from("<h1>Now</h1>");
    let _ = write!(
        main,
        r#"<div class="cards"><div class="card" data-figure="open" data-value="{open}"><div class="muted">releasing or waiting</div><div class="figure">{open}</div></div><div class="card" data-figure="locks" data-value="{locks}"><div class="muted">locks held</div><div class="figure">{locks}</div></div><div class="card" data-figure="recent" data-value="{recent}"><div class="muted">ended in the last 24 h</div><div class="figure">{recent}</div><div>{outcomes}</div></div></div>"#,
        open = report.open.len(),
        locks = report.locks.len(),
        recent = report.ended,
        outcomes = report.outcomes.iter().map(|(s, n)| format!("{} {}", n, status(s.as_str()))).collect::<Vec<_>>().join(", "),
    );
    main.push_str("<h2>Releasing or waiting</h2>");
    main.push_str(&release_table(&report.open, 0, true, "open"));
    main.push_str("<h2>Locks held</h2>");
    if report.locks.is_empty() {
        main.push_str(r#"<p class="muted">None.</p>"#);
    } else {
        main.push_str(r#"<div class="table-wrap"><table id="locks"><thead><tr><th>service</th><th>environment</th><th>held by</th><th>lease ends</th></tr></thead><tbody>"#);
        for lock in &report.locks {
            let _ = write!(
                main,
                r#"<tr data-lock="{}"><td>{}</td><td>{}</td><td><a href="releases/{}.html">{}</a></td><td>{}</td></tr>"#,
                esc(&lock.service),
                service_link(&lock.service, 0),
                esc(&lock.environment),
                slug(&lock.holder),
                esc(&lock.holder),
                time(lock.expires_at)
            );
        }
        main.push_str("</tbody></table></div>");
    }
    main.push_str("<h2>The last 24 hours</h2>");
    if report.ended > report.recent.len() {
        let _ = write!(main, r#"<p class="muted">The newest {} of {}.</p>"#, report.recent.len(), report.ended);
    }
    main.push_str(&release_table(&report.recent, 0, true, "recent"));
    let _ = write!(main, r#"<p>{} services: see <a href="organisation.html">the organisation</a> and each team.</p>"#, site.entries.len());
    let _ = write!(main, r#"<p class="muted">As of {}.</p>"#, time(report.generated_at));
    layout(site, "Now", 0, &main)
}

fn band(b: Option<Band>) -> String {
    b.map(|b| format!(r#" <span class="band band-{0}">{0}</span>"#, b.as_str())).unwrap_or_default()
}

fn durations(d: &Durations) -> String {
    match (d.p50_seconds, d.p90_seconds) {
        (Some(p50), Some(p90)) => format!("{} <span class=\"muted\">p90 {}</span>", human_seconds(p50), human_seconds(p90)),
        _ => "-".into(),
    }
}

/// How many lead times are approximations (as `baton dora` says it): each deployment whose
/// commits could not be listed measured one, from its own commit, for all it carried.
fn approximate(fallbacks: u64) -> String {
    match fallbacks {
        0 => String::new(),
        n => format!(
            r#"<div class="muted" data-figure="lead-time-fallbacks" data-value="{n}">{n} approximate: measured from a deployment's own commit alone</div>"#
        ),
    }
}

fn figure_cards(f: &Figures) -> String {
    let rate = f.change_failure_rate.map_or("-".into(), |r| format!("{:.1} %", r * 100.0));
    format!(
        r#"<div class="cards dora"><div class="card" data-figure="deployments" data-value="{deployments}"><div class="muted">deployment frequency</div><div class="figure">{per_week:.1} a week{df}</div><div class="muted">{deployments} deployments in {days} days</div></div><div class="card" data-figure="lead-time" data-value="{lead}"><div class="muted">lead time for changes (p50)</div><div class="figure">{lead_text}{lt}</div>{approximate}</div><div class="card" data-figure="change-failure-rate" data-value="{rate_value}"><div class="muted">change failure rate</div><div class="figure">{rate}{cfr}</div><div class="muted">{failed} failed, {rollbacks} rolled back</div></div><div class="card" data-figure="time-to-restore" data-value="{restore}"><div class="muted">time to restore (p50)</div><div class="figure">{restore_text}{ttr}</div></div></div>"#,
        deployments = f.deployments,
        per_week = f.deployments_per_week,
        df = band(Some(f.bands.deployment_frequency)),
        days = f.days,
        lead = f.lead_time.p50_seconds.unwrap_or(-1.0),
        lead_text = durations(&f.lead_time),
        lt = band(f.bands.lead_time),
        approximate = approximate(f.lead_time_fallbacks),
        rate_value = f.change_failure_rate.unwrap_or(-1.0),
        cfr = band(f.bands.change_failure_rate),
        failed = f.failed_deployments,
        rollbacks = f.rollbacks,
        restore = f.time_to_restore.p50_seconds.unwrap_or(-1.0),
        restore_text = durations(&f.time_to_restore),
        ttr = band(f.bands.time_to_restore),
    )
}

fn entry_facts(entry: &ServiceEntry) -> String {
    let d = &entry.delivery;
    let mut facts: Vec<(&str, String)> = vec![
        ("team", reports::team_of(entry).map(esc).unwrap_or_else(|| "-".into())),
        ("on-call", d.on_call.as_deref().map(esc).unwrap_or_else(|| "-".into())),
        ("environment", esc(&d.environment)),
        ("release branch", esc(&d.release_branch)),
        ("schedule", d.schedule.as_deref().map(esc).unwrap_or_else(|| "-".into())),
        ("slack", d.notifier("slack").and_then(|slack| slack.text("channel")).map(esc).unwrap_or_else(|| "-".into())),
        ("build", esc(&d.build.provider)),
        ("deploy", esc(&d.deploy.target.provider)),
        ("gates", esc(&d.health.gates.iter().map(|g| g.gate.provider.as_str()).collect::<Vec<_>>().join(", "))),
    ];
    let waves = d
        .deploy
        .waves
        .iter()
        .map(|w| {
            let targets = counted(w.targets.len(), "target");
            format!("{} ({targets}, bake {})", esc(&w.name), human_seconds(w.bake.0 as f64))
        })
        .collect::<Vec<_>>()
        .join(" → ");
    facts.push(("waves", waves));
    let links = entry.links.iter().map(|l| link(Some(&l.url), &l.name)).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" · ");
    if !links.is_empty() {
        facts.push(("links", links));
    }
    facts.push(("definition", format!("<code>{}</code>", esc(&entry.source))));
    let mut out = String::from(r#"<dl class="entry">"#);
    for (name, value) in facts {
        let _ = write!(out, "<dt>{name}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>");
    out
}

pub fn service(site: &Site, entry: &ServiceEntry, report: &ServiceReport, depth: usize) -> String {
    let mut main = format!(r#"<h1 data-service="{0}">{0}</h1>"#, esc(&report.service));
    let delivery = &report.delivery;
    let _ = write!(
        main,
        "<h2>Delivery in {} <span class=\"muted\">({} to {})</span></h2>",
        esc(&delivery.environment),
        delivery.from,
        delivery.to
    );
    main.push_str(&figure_cards(&delivery.figures));
    main.push_str(&svg::weekly_deployments(&delivery.weeks));
    main.push_str("<h2>Releases</h2>");
    main.push_str(&release_table(&report.releases, depth, false, "releases"));
    let b = &report.builds.summary;
    let _ = write!(
        main,
        r#"<h2>Builds</h2><div class="cards"><div class="card" data-figure="builds" data-value="{}"><div class="muted">builds</div><div class="figure">{}</div></div><div class="card" data-figure="build-p50" data-value="{}"><div class="muted">duration p50 / p90</div><div class="figure">{} / {}</div></div><div class="card" data-figure="build-failure-rate" data-value="{}"><div class="muted">failure rate</div><div class="figure">{}</div></div><div class="card" data-figure="flaky" data-value="{}"><div class="muted">flaky commits</div><div class="figure">{}</div></div></div>"#,
        b.builds,
        b.builds,
        b.p50_seconds.map_or(-1, |s| s as i64),
        b.p50_seconds.map_or("-".into(), |s| human_seconds(s as f64)),
        b.p90_seconds.map_or("-".into(), |s| human_seconds(s as f64)),
        b.failure_rate.unwrap_or(-1.0),
        b.failure_rate.map_or("-".into(), |r| format!("{:.1} %", r * 100.0)),
        report.builds.flaky.len(),
        report.builds.flaky.len(),
    );
    main.push_str("<h2>Catalog entry</h2>");
    main.push_str(&entry_facts(entry));
    let _ = write!(main, r#"<p class="muted">As of {}.</p>"#, time(report.generated_at));
    layout(site, &report.service, depth, &main)
}

pub fn group(site: &Site, report: &GroupReport, depth: usize) -> String {
    let heading = match report.scope.as_str() {
        "organisation" => format!("The organisation: {} services", report.services.len()),
        scope => format!("{scope} {}", report.name),
    };
    let mut main = format!(r#"<h1 data-{}="{}">{}</h1>"#, esc(&report.scope), esc(&report.name), esc(&heading));
    let d = &report.delivery;
    let _ = write!(main, "<h2>Delivery in {} <span class=\"muted\">({} to {})</span></h2>", esc(&d.environment), d.from, d.to);
    main.push_str(&figure_cards(&d.figures));
    main.push_str(&svg::weekly_deployments(&d.weeks));
    main.push_str(r#"<h2>Services, the most failing and least shipping first</h2><div class="table-wrap"><table id="services"><thead><tr><th>service</th><th>deployments</th><th>change failure rate</th><th>lead time p50</th><th>time to restore p50</th></tr></thead><tbody>"#);
    for s in report.services.iter().take(GROUP_ROWS) {
        let f = &s.figures;
        let _ = write!(
            main,
            r#"<tr data-service="{}" data-deployments="{}"><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&s.service),
            f.deployments,
            service_link(&s.service, depth),
            f.deployments,
            band(Some(f.bands.deployment_frequency)),
            f.change_failure_rate.map_or("-".into(), |r| format!("{:.1} %", r * 100.0)),
            band(f.bands.change_failure_rate),
            durations(&f.lead_time),
            durations(&f.time_to_restore),
        );
    }
    main.push_str("</tbody></table></div>");
    if report.scope == "organisation" {
        let repositories: Vec<String> =
            site.repositories().iter().map(|r| format!(r#"<a href="{}repositories/{}.html">{}</a>"#, up(depth), slug(r), esc(r))).collect();
        if !repositories.is_empty() {
            let _ = write!(main, "<h2>Repositories</h2><p>{}</p>", repositories.join(" · "));
        }
    }
    if report.services.len() > GROUP_ROWS {
        let mut names: Vec<&str> = report.services.iter().map(|s| s.service.as_str()).collect();
        names.sort_unstable();
        let _ = write!(main, r#"<details><summary>All {} services, by name</summary><p class="all-services">"#, names.len());
        main.push_str(&names.iter().map(|name| service_link(name, depth)).collect::<Vec<_>>().join(" · "));
        main.push_str("</p></details>");
    }
    let _ = write!(main, r#"<p class="muted">As of {}.</p>"#, time(report.generated_at));
    layout(site, &format!("{} {}", report.scope, report.name), depth, &main)
}

pub fn release(site: &Site, report: &ReleaseReport, history: Option<Result<Vec<serde_json::Value>, StoreError>>, depth: usize) -> String {
    let row = &report.row;
    let mut main = format!(r#"<h1 data-release="{0}">{0}</h1>"#, esc(&row.id));
    let artifact = row.artifact.as_deref().map(|a| format!("<code>{}</code>", esc(a))).unwrap_or_else(|| "-".into());
    let build = row
        .build
        .as_ref()
        .map(|b| format!("{} {} {}", esc(&b.provider), status(&b.status), link(b.url.as_deref(), "run")))
        .unwrap_or_else(|| "-".into());
    let _ = write!(
        main,
        r#"<dl class="entry"><dt>service</dt><dd>{}</dd><dt>status</dt><dd>{}</dd><dt>environment</dt><dd>{}</dd><dt>commit</dt><dd>{} on {}</dd><dt>artifact</dt><dd>{artifact}</dd><dt>build</dt><dd>{build}</dd><dt>trigger</dt><dd>{}{}</dd><dt>started</dt><dd>{}</dd><dt>ended</dt><dd>{}</dd><dt>duration</dt><dd>{}</dd><dt>cost</dt><dd>{}</dd><dt>slack</dt><dd>{}</dd>{}</dl>"#,
        service_link(&row.service, depth),
        status(row.status.as_str()),
        esc(&row.environment),
        short(row.sha.as_deref()),
        esc(&row.branch),
        esc(&row.trigger),
        row.actor.as_deref().map(|a| format!(" by {}", esc(a))).unwrap_or_default(),
        time(row.created_at),
        opt_time(row.finished_at),
        human_seconds(row.duration_seconds as f64),
        cost(row),
        match slack_link(row) {
            a if a.is_empty() => "-".to_owned(),
            a => a,
        },
        row.failure.as_deref().map(|f| format!(r#"<dt>failure</dt><dd class="status-failed">{}</dd>"#, esc(f))).unwrap_or_default(),
    );
    main.push_str("<h2>Waves</h2>");
    main.push_str(&svg::waves(row));
    main.push_str(r#"<div class="table-wrap"><table id="waves"><thead><tr><th>wave</th><th>status</th><th>targets</th><th>deployed</th><th>baked from</th><th>ended</th><th>gates</th><th>deploy</th></tr></thead><tbody>"#);
    for wave in &row.waves {
        let gates = wave
            .gates
            .iter()
            .map(|g| format!("{}: {} samples, last {}", esc(&g.gate), g.samples, esc(g.last.as_deref().unwrap_or("-"))))
            .collect::<Vec<_>>()
            .join("<br>");
        let rolled = if wave.rolled_back_targets > 0 { format!(" ({} rolled back)", wave.rolled_back_targets) } else { String::new() };
        let _ = write!(
            main,
            r#"<tr data-wave="{}" data-status="{}"><td>{}</td><td>{}</td><td>{}{rolled}</td><td>{}</td><td>{}</td><td>{}</td><td>{gates}</td><td>{}</td></tr>"#,
            esc(&wave.name),
            wave.status.as_str(),
            esc(&wave.name),
            status(wave.status.as_str()),
            wave.targets,
            opt_time(wave.started_at),
            opt_time(wave.bake_started_at),
            opt_time(wave.finished_at),
            link(wave.deploy_url.as_deref(), "deploy"),
        );
    }
    main.push_str("</tbody></table></div>");
    let charts: String = row.waves.iter().flat_map(|wave| wave.gates.iter().map(|gate| svg::gate_samples(&wave.name, gate))).collect();
    if !charts.is_empty() {
        main.push_str(r#"<h2>Gate samples</h2><div class="gate-charts">"#);
        main.push_str(&charts);
        main.push_str("</div>");
    }
    main.push_str("<h2>Timeline</h2>");
    main.push_str(r#"<div class="table-wrap"><table id="timeline"><thead><tr><th>at</th><th>stage</th><th>event</th><th>wave</th><th>what happened</th></tr></thead><tbody>"#);
    for event in &report.events {
        let stage = serde_json::to_value(event.stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let kind = serde_json::to_value(event.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = write!(
            main,
            r#"<tr data-event="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style="white-space: normal">{}</td></tr>"#,
            esc(&kind),
            time(event.at),
            esc(&stage),
            esc(&kind),
            esc(event.wave.as_deref().unwrap_or("")),
            esc(&event.message)
        );
    }
    main.push_str("</tbody></table></div>");
    match history {
        Some(Ok(events)) => main.push_str(&execution_history(&events)),
        Some(Err(err)) => {
            let _ = write!(
                main,
                r#"<h2>Execution history</h2><p class="status-failed" data-history-error>Cannot read the execution history: {}</p>"#,
                esc(&err.to_string())
            );
        }
        None => {}
    }
    layout(site, &row.id, depth, &main)
}

/// The execution's history as Step Functions shows it: each event's type, state and resource,
/// and when it came after the first.
fn execution_history(events: &[serde_json::Value]) -> String {
    if events.is_empty() {
        return String::new();
    }
    let at = |event: &serde_json::Value| event["timestamp"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let start = events.first().and_then(at);
    let mut out = String::from(
        r#"<h2>Execution history</h2><div class="table-wrap"><table id="history"><thead><tr><th>id</th><th>type</th><th>state</th><th>resource</th><th>after</th></tr></thead><tbody>"#,
    );
    for event in events {
        let details: Vec<&serde_json::Value> =
            event.as_object().into_iter().flatten().filter(|(key, _)| key.ends_with("EventDetails")).map(|(_, d)| d).collect();
        let field = |name: &str| details.iter().find_map(|d| d[name].as_str()).unwrap_or("");
        let after = match (start, at(event)) {
            (Some(start), Some(at)) => format!("{} ms", (at - start).num_milliseconds()),
            _ => String::new(),
        };
        let kind = event["type"].as_str().unwrap_or("?");
        let _ = write!(
            out,
            r#"<tr data-history-type="{kind}"><td>{}</td><td>{kind}</td><td>{}</td><td>{}</td><td>{after}</td></tr>"#,
            event["id"].as_u64().unwrap_or(0),
            esc(field("name")),
            esc(field("resource").rsplit(':').next().unwrap_or("")),
            kind = esc(kind),
        );
    }
    out.push_str("</tbody></table></div>");
    if events.len() >= HISTORY_EVENTS {
        let _ = write!(out, r#"<p class="muted">The first {HISTORY_EVENTS} events.</p>"#);
    }
    out
}
