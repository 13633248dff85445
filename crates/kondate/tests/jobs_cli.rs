//! `kondate jobs` as a user runs it: definitions checked with file and field, listed with
//! their next fire times in their zones, a bad one exiting 2 and naming where it is wrong.

use std::path::Path;
use std::process::{Command, Output};

fn kondate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(args)
        .current_dir(dir)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .output()
        .expect("kondate runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn jobs_are_checked_listed_and_their_next_times_shown_in_their_zones() {
    let dir = tempfile::tempdir().unwrap();
    let o = kondate(dir.path(), &["init", "p"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let root = dir.path().join("p");
    std::fs::write(
        root.join("jobs/train.jsonnet"),
        "{\n  description: 'Weekly training',\n  script: |||\n    retry: count=2 sleep_time=60\n      \
         app: train\n  |||,\n  schedules: [{ cron: '0 9 * * 1', time_zone: 'Asia/Tokyo' }],\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("jobs/export.json"),
        r#"{ "script": "results_export: recipe_categories\n", "schedules": ["30 2 * * *"] }"#,
    )
    .unwrap();

    // All good: check passes; list shows both with their next fire time.
    let o = kondate(&root, &["jobs", "check"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = kondate(&root, &["jobs", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jobs[0]["name"], "export");
    assert_eq!(jobs[1]["name"], "train");
    assert_eq!(jobs[1]["schedules"][0]["time_zone"], "Asia/Tokyo");
    let next = jobs[1]["next"].as_str().unwrap();
    assert!(next.ends_with("T09:00:00+09:00"), "{next}");
    let o = kondate(&root, &["jobs", "list"]);
    assert!(
        text(&o.stdout).contains("0 9 * * 1 (Asia/Tokyo)"),
        "{}",
        text(&o.stdout)
    );

    // next: Mondays at 09:00 in Tokyo, a week apart, in the future.
    let o = kondate(
        &root,
        &["jobs", "next", "train", "-n", "3", "--format", "json"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let times: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(times.len(), 3);
    let parsed: Vec<_> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .collect();
    assert!(parsed[0] > chrono::Utc::now());
    for (t, p) in times.iter().zip(&parsed) {
        assert!(t.ends_with("T09:00:00+09:00"), "{t}");
        assert_eq!(chrono::Datelike::weekday(p), chrono::Weekday::Mon, "{t}");
    }
    assert_eq!(parsed[1] - parsed[0], chrono::Duration::days(7));

    // A mistake: check exits 2 naming the file, the field and the script's line and task;
    // list shows the others and the error.
    std::fs::write(
        root.join("jobs/broken.jsonnet"),
        "{ script: 'noop:\\ntimeout: 5s\\n', schedules: ['0 3 * * *'] }",
    )
    .unwrap();
    let o = kondate(&root, &["jobs", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let out = text(&o.stdout);
    assert!(
        out.contains("broken.jsonnet: field `script`, line 2: `timeout`: "),
        "{out}"
    );
    assert!(text(&o.stderr).contains("1 of 3 job definitions have errors"));
    let o = kondate(&root, &["jobs", "list", "--format", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(jobs[0]["error"].as_str().unwrap().contains("line 2"));
    assert!(jobs[2]["next"].is_string());

    // Unknown job, and a bad name.
    let o = kondate(&root, &["jobs", "next", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no job named `nope`"),
        "{}",
        text(&o.stderr)
    );
    let o = kondate(&root, &["jobs", "next", "../x"]);
    assert_eq!(o.status.code(), Some(2));
}
