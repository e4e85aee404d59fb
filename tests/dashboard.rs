//! esmond-serve's dashboard (`/` and `/dashboard/KEY`): test pairs with their latest
//! values, charts per event type, traceroute paths with their changes marked; checked as
//! HTML, then rendered by headless Chromium (screenshots kept in target/test-artifacts).

mod common;

use common::serve::Serve;
use serde_json::{json, Value};

/// The trace fixture's run time (2026-12-01T02:47:55Z).
const T0: i64 = 1_796_093_275;

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(
        common::repo_root()
            .join("tests/fixtures/pscheduler")
            .join(name),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Creates a metadata between the fixtures' hosts: its key.
fn metadata(serve: &Serve, tool: &str, event_types: &[&str]) -> String {
    let body = json!({
        "subject-type": "point-to-point",
        "source": "198.51.100.10",
        "destination": "203.0.113.20",
        "measurement-agent": "198.51.100.10",
        "input-source": "ps-a.example.net",
        "input-destination": "ps-b.example.net",
        "tool-name": tool,
        "event-types": event_types.iter().map(|e| json!({"event-type": e})).collect::<Vec<_>>(),
    });
    let (status, created) =
        serve.call("POST", "/perfsonar/archive/", Some(&body.to_string()), true);
    assert_eq!(status, 201, "{created}");
    serde_json::from_str::<Value>(&created).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Writes `(ts, event type, value)` points in one bulk PUT.
fn put(serve: &Serve, key: &str, points: &[(i64, &str, Value)]) {
    let data: Vec<Value> = points
        .iter()
        .map(|(ts, e, v)| json!({"ts": ts, "val": [{"event-type": e, "val": v}]}))
        .collect();
    let body = json!({ "data": data }).to_string();
    let (status, answer) = serve.call(
        "PUT",
        &format!("/perfsonar/archive/{key}/"),
        Some(&body),
        true,
    );
    assert_eq!(status, 201, "{answer}");
}

/// The trace fixture as another run `n` hours later, its second hop `hop` (`None`: no
/// answer, as in the fixture).
fn trace_run(n: i64, hop: Option<&str>) -> String {
    let mut body = fixture("trace_traceroute.json");
    let id = format!("0b3510b0-b46e-41da-b170-17a6205738{n:02}");
    let old = body["id"].as_str().unwrap().to_owned();
    body["id"] = json!(id);
    let href = body["run"]["href"].as_str().unwrap().replace(&old, &id);
    body["run"]["href"] = json!(href);
    let start = chrono::DateTime::from_timestamp(T0 + n * 3600, 0).unwrap();
    body["schedule"]["start"] = json!(start.to_rfc3339());
    body["result"]["paths"][0][1] = match hop {
        Some(ip) => json!({"ip": ip, "rtt": "PT0.0007S"}),
        None => json!({}),
    };
    body.to_string()
}

/// GET `path`: status, Content-Type, Content-Security-Policy, body.
fn page(serve: &Serve, path: &str) -> (u16, String, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://{}{path}", serve.addr()))
        .call()
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, policy) = (header("content-type"), header("content-security-policy"));
    let status = response.status().as_u16();
    (
        status,
        content_type,
        policy,
        response.body_mut().read_to_string().unwrap(),
    )
}

/// The text of the overview row that links to `key`.
fn row<'a>(html: &'a str, key: &str) -> &'a str {
    let at = html
        .find(&format!("href=\"/dashboard/{key}\""))
        .unwrap_or_else(|| panic!("no row for {key}: {html}"));
    let start = html[..at].rfind("<tr>").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    &html[start..end]
}

/// Pixels of exactly this colour in a PNG screenshot.
fn pixels_of(png: &std::path::Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p[..3] == rgb)
        .count()
}

on_both_stores! {
fn the_dashboard_shows_each_pair_its_charts_and_a_changed_traceroute_path() {
    let serve = Serve::start(&[]);
    let (status, _, _, empty) = page(&serve, "/");
    assert_eq!(status, 200);
    assert!(empty.contains("<p>0 tests in the archive.</p>"), "{empty}");

    // Throughput: 48 hourly results, the last 9.47 Gb/s, and one failure.
    let throughput = metadata(&serve, "pscheduler/iperf3", &["throughput", "failures"]);
    let points: Vec<(i64, &str, Value)> = (0..48)
        .map(|i| {
            (
                T0 - (47 - i) * 3600,
                "throughput",
                json!(9_000_000_000i64 + i * 10_000_000),
            )
        })
        .chain([(
            T0 - 1800,
            "failures",
            json!({"error": "iperf3 <server busy>"}),
        )])
        .collect();
    put(&serve, &throughput, &points);
    // Latency: 12 results four hours apart; the last with a median of 0.45 ms and 3 of 600 packets lost.
    let latency = metadata(
        &serve,
        "pscheduler/owping",
        &["histogram-owdelay", "packet-loss-rate"],
    );
    let mut points = Vec::new();
    for i in 0..12 {
        let ts = T0 - (11 - i) * 4 * 3600;
        let histogram = match i {
            11 => json!({"0.40": 5, "0.45": 30, "0.90": 2}),
            _ => json!({"0.30": 10, "0.50": 10 + i}),
        };
        points.push((ts, "histogram-owdelay", histogram));
        points.push((
            ts,
            "packet-loss-rate",
            json!({"numerator": i.min(3), "denominator": 600}),
        ));
    }
    put(&serve, &latency, &points);
    // Traceroute, by pScheduler's http archiver: the fixture's path twice, then its silent
    // second hop answers from another address.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("writer:{}", serve.key));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for (n, hop) in [(0, None), (1, None), (2, Some("192.0.2.7"))] {
        let mut response = agent
            .put(&format!("http://{}/logstash", serve.addr()))
            .header("Authorization", &format!("Basic {basic}"))
            .header("Content-Type", "application/json")
            .send(trace_run(n, hop))
            .unwrap();
        let answer = response.body_mut().read_to_string().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{answer}");
    }
    let (_, found) = serve.call(
        "GET",
        "/perfsonar/archive/?tool-name=pscheduler/traceroute",
        None,
        false,
    );
    let found: Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let trace = found[0]["metadata-key"].as_str().unwrap().to_owned();

    // The overview: one row per test, its latest values, the changed path flagged.
    let (status, content_type, policy, overview) = page(&serve, "/");
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_eq!(
        policy,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'"
    );
    assert!(
        overview.contains("<p>3 tests in the archive.</p>"),
        "{overview}"
    );
    assert!(!overview.contains("<script") && !overview.contains("src="));
    let cells = |row: &str| -> Vec<String> {
        row.split("<td")
            .skip(1)
            .map(|cell| {
                let text = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
                let mut plain = String::new();
                let mut in_tag = false;
                for c in text.chars() {
                    match c {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        c if !in_tag => plain.push(c),
                        _ => {}
                    }
                }
                plain
            })
            .collect()
    };
    assert_eq!(
        cells(row(&overview, &throughput)),
        [
            "198.51.100.10 → 203.0.113.20",
            "pscheduler/iperf3",
            "9.47 Gb/s",
            "",
            "",
            "",
            "2026-12-01 02:47"
        ]
    );
    assert_eq!(
        cells(row(&overview, &latency)),
        [
            "198.51.100.10 → 203.0.113.20",
            "pscheduler/owping",
            "",
            "0.45 ms",
            "0.5 %",
            "",
            "2026-12-01 02:47"
        ]
    );
    assert_eq!(
        cells(row(&overview, &trace)),
        [
            "198.51.100.10 → 203.0.113.20",
            "pscheduler/traceroute",
            "",
            "",
            "",
            "3 hops changed",
            "2026-12-01 04:47"
        ]
    );

    // A test's page: a chart per numeric event type with every point, the failures listed.
    let (status, _, _, detail) = page(&serve, &format!("/dashboard/{throughput}"));
    assert_eq!(status, 200);
    assert!(
        detail.contains("data-event-type=\"throughput\" data-points=\"48\""),
        "{detail}"
    );
    assert_eq!(detail.matches("<circle").count(), 48);
    assert!(
        detail.contains("<td>iperf3 &lt;server busy&gt;</td>"),
        "{detail}"
    );
    let (_, _, _, one_day) = page(&serve, &format!("/dashboard/{throughput}?days=1"));
    assert!(
        one_day.contains("data-points=\"25\""),
        "the last day's 25 results"
    );
    let (_, _, _, detail) = page(&serve, &format!("/dashboard/{latency}"));
    for event_type in ["histogram-owdelay", "packet-loss-rate"] {
        assert!(
            detail.contains(&format!(
                "data-event-type=\"{event_type}\" data-points=\"12\""
            )),
            "{event_type}: {detail}"
        );
    }
    // The traceroute page: two paths, the newer with its one new hop marked.
    let (_, _, _, paths) = page(&serve, &format!("/dashboard/{trace}"));
    assert!(
        paths.contains("<p>2 paths and 1 change in this span.</p>"),
        "{paths}"
    );
    assert_eq!(
        paths
            .matches("<span class=badge>path changed</span>")
            .count(),
        1
    );
    assert_eq!(paths.matches("<mark class=changed>").count(), 1, "{paths}");
    assert!(paths.contains("<mark class=changed>192.0.2.7</mark>"));
    assert!(
        paths.contains("<li>203.0.113.20 (ps-b.example.net)</li>"),
        "{paths}"
    );

    // Wrong requests get plain answers.
    assert_eq!(
        page(&serve, "/dashboard/0123456789abcdef0123456789abcdef").0,
        404
    );
    let (status, _, _, bad) = page(&serve, "/?page=first");
    assert_eq!(
        (status, bad.as_str()),
        (
            400,
            "{\"detail\":\"Invalid query: invalid digit found in string\"}"
        )
    );
    let (status, head) = serve.call("HEAD", "/", None, false);
    assert_eq!((status, head.as_str()), (200, ""));

    // Rendered by Chromium: nothing fetched beyond the page; the chart's line and dots, the
    // marked hop and the badges are on screen.
    if !common::have("chromium", "renders the dashboard") {
        return;
    }
    let artifacts = common::repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    for (name, path, rgb, at_least) in [
        (
            "dashboard-overview",
            "/".to_owned(),
            [0xc0, 0x39, 0x2b],
            100,
        ),
        (
            "dashboard-throughput",
            format!("/dashboard/{throughput}"),
            [0x22, 0x66, 0xaa],
            200,
        ),
        (
            "dashboard-latency",
            format!("/dashboard/{latency}"),
            [0x22, 0x66, 0xaa],
            200,
        ),
        (
            "dashboard-traceroute",
            format!("/dashboard/{trace}"),
            [0xf9, 0xd4, 0xcf],
            300,
        ),
    ] {
        let url = format!("http://{}{path}", serve.addr());
        let dom = common::chromium(&url, profile.path(), &["--dump-dom"]);
        assert!(dom.contains("</table>"), "{name}: {dom}");
        // The page asks for nothing (the net log lists requests a page made).
        assert_eq!(
            common::page_requests(profile.path()),
            Vec::<String>::new(),
            "{name}"
        );
        // The sqlite and postgres variants run at once: each keeps its own screenshots
        // (one removed the other's before it was read, once in CI).
        let shot = artifacts.join(format!("{name}-{}.png", common::serve::store_name()));
        let _ = std::fs::remove_file(&shot);
        common::chromium(
            &url,
            profile.path(),
            &[&format!("--screenshot={}", shot.display())],
        );
        let seen = pixels_of(&shot, rgb);
        assert!(
            seen >= at_least,
            "{name}: {seen} pixels of {rgb:?} in {}",
            shot.display()
        );
    }
}
}
