//! Definitions: Hako-shaped examples evaluate and render; bad ones fail with the file, line
//! and field.

use std::path::{Path, PathBuf};

use kondate_apps::NoteKind;
use kondate_apps::render::{self, Overrides};
use kondate_apps::{Apps, AppsError, SchedulerKind};
use serde_json::json;

fn hako() -> Apps {
    Apps::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hako"))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn hako_examples_evaluate_with_providers_as_placeholders_or_values() {
    let apps = hako();
    assert_eq!(
        apps.names().unwrap(),
        ["awesome-app", "fargate-batch", "hello", "service"]
    );
    let shown = apps.load("hello", false).unwrap();
    assert_eq!(shown.scheduler, SchedulerKind::Ecs);
    assert_eq!(shown.app.env["MESSAGE"], "${username}-san");
    let expanded = apps.load("hello", true).unwrap();
    assert_eq!(expanded.app.env["MESSAGE"], "eagletmt-san");
    assert_eq!(
        expanded.app.image.as_deref(),
        Some("example/hello-sinatra:latest")
    );
    assert_eq!(expanded.sidecars.len(), 2);
    assert_eq!(expanded.scripts[0]["type"], "nginx_front");
    assert_eq!(expanded.scripts[0]["backend_port"], 3000);
    // ECS-only fields are kept and reported as not used locally; nothing is "unknown".
    let fields: Vec<&str> = expanded.notes.iter().map(|n| n.field.as_str()).collect();
    assert!(fields.contains(&"app.links"), "{fields:?}");
    assert!(fields.contains(&"additional_containers"), "{fields:?}");
    assert!(
        expanded
            .notes
            .iter()
            .all(|n| n.kind == NoteKind::IgnoredLocally),
        "{:?}",
        expanded.notes
    );

    let awesome = apps.load("awesome-app", true).unwrap();
    assert_eq!(awesome.app.env["APP_ID"], "awesome-app");
    assert_eq!(awesome.app.env["USERNAME"], "eagletmt");
    assert_eq!(awesome.app.env["PASSWORD"], "hako");
    assert_eq!(
        apps.load("awesome-app", false).unwrap().app.env["PASSWORD"],
        "${password}"
    );
}

#[test]
fn hako_examples_render_for_ecs_with_hakos_mapping() {
    let apps = hako();
    let hello = apps.load("hello", true).unwrap();
    let o = Overrides {
        command: Some(vec!["rake".into(), "db:migrate".into()]),
        env: vec![("RAILS_ENV".into(), "production".into())],
    };
    let v = render::ecs(&hello, &o).unwrap();
    let task = &v["taskDefinition"];
    assert_eq!(task["family"], "hello");
    assert_eq!(
        task["taskRoleArn"],
        "arn:aws:iam::012345678901:role/HelloRole"
    );
    let app = &task["containerDefinitions"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["image"], "example/hello-sinatra:latest");
    assert_eq!(
        (app["cpu"].clone(), app["memory"].clone()),
        (json!(256), json!(128))
    );
    assert!(
        app["environment"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "MESSAGE", "value": "eagletmt-san"}))
    );
    assert_eq!(
        app["secrets"],
        json!([{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:ap-northeast-1:012345678901:parameter/hello/db"}])
    );
    assert_eq!(app["links"], json!(["redis:redis"]));
    let names: Vec<&str> = task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "front", "redis"]);
    assert_eq!(task["containerDefinitions"][2]["image"], "redis:3.0");
    let run = &v["runTask"];
    assert_eq!(run["cluster"], "kondate-test");
    assert_eq!(run["taskDefinition"], "hello");
    assert_eq!(
        run["overrides"]["containerOverrides"][0],
        json!({"name": "app", "command": ["rake", "db:migrate"],
               "environment": [{"name": "RAILS_ENV", "value": "production"}]})
    );

    let batch = apps.load("fargate-batch", true).unwrap();
    let v = render::ecs(&batch, &Overrides::default()).unwrap();
    let task = &v["taskDefinition"];
    assert_eq!(
        (task["cpu"].clone(), task["memory"].clone()),
        (json!("1024"), json!("2048"))
    );
    assert_eq!(task["requiresCompatibilities"], json!(["FARGATE"]));
    assert_eq!(task["networkMode"], "awsvpc");
    assert_eq!(
        task["executionRoleArn"],
        "arn:aws:iam::012345678901:role/ecsTaskExecutionRole"
    );
    let app = &task["containerDefinitions"][0];
    assert_eq!(app["memoryReservation"], 128);
    assert_eq!(
        app["logConfiguration"],
        json!({"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/fargate-batch",
               "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs"}})
    );
    assert_eq!(v["runTask"]["launchType"], "FARGATE");
    assert_eq!(
        v["runTask"]["networkConfiguration"],
        json!({"awsvpcConfiguration": {"subnets": ["subnet-XXXXXXXX"], "securityGroups": [],
               "assignPublicIp": "DISABLED"}})
    );
}

#[test]
fn ecs_service_fields_are_known_and_rendered_in_the_apis_case() {
    let def = hako().load("service", true).unwrap();
    assert!(
        def.notes.iter().all(|n| n.kind == NoteKind::IgnoredLocally),
        "{:?}",
        def.notes
    );
    let v = render::ecs(&def, &Overrides::default()).unwrap();
    let app = &v["taskDefinition"]["containerDefinitions"][0];
    assert_eq!(
        app["linuxParameters"],
        json!({"capabilities": {"add": ["SYS_RAWIO"]}})
    );
    assert_eq!(
        app["portMappings"],
        json!([{"containerPort": 3000, "hostPort": 0}])
    );
    // User-chosen keys stay as written.
    assert_eq!(app["dockerLabels"], json!({"com.example.team": "ml"}));
    assert_eq!(app["command"], json!(["bundle", "exec", "rackup"]));
}

#[test]
fn kubernetes_and_docker_renderings() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonnet",
        r#"{
  scheduler: { type: 'kubernetes', namespace: 'ml', secret_name: 'train-secrets' },
  app: {
    image: 'example/train', tag: 'v3',
    command: ['python', 'train.py'],
    cpu: 512, memory: 2048, memory_reservation: 1024,
    env: { EPOCHS: '3' },
    secrets: [
      { name: 'DB_PASSWORD', value_from: 'env:TRAIN_DB_PASSWORD' },
      { name: 'API_KEY', value_from: 'k8s:shared/api-key' },
    ],
  },
  timeout: '2h',
  retries: 2,
}"#,
    );
    let apps = Apps::new(dir.path());
    let def = apps.load("train", true).unwrap();
    let job = render::kubernetes(&def, &Overrides::default()).unwrap();
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["namespace"], "ml");
    assert_eq!(job["spec"]["backoffLimit"], 2);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 7200);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "example/train:v3");
    assert_eq!(c["args"], json!(["python", "train.py"]));
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "500m", "memory": "1024Mi"}, "limits": {"memory": "2048Mi"}})
    );
    let env = c["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "EPOCHS", "value": "3"})));
    assert!(env.contains(&json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "train-secrets", "key": "DB_PASSWORD"}}})));
    assert!(env.contains(&json!({"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "shared", "key": "api-key"}}})));

    let argv = render::docker_argv(
        &def,
        &Overrides::default(),
        "kondate-x",
        &["KONDATE_TOKEN_SECRET".to_string()],
    )
    .unwrap();
    let line = argv.join(" ");
    // The run contract is passed by name too: no token in the argument list.
    assert!(line.contains("--env KONDATE_TOKEN_SECRET "), "{line}");
    assert!(
        line.starts_with("docker run --rm --init --name kondate-x"),
        "{line}"
    );
    assert!(
        line.contains("--cpus 0.500 --memory 2048m --memory-reservation 1024m"),
        "{line}"
    );
    assert!(line.contains("--env EPOCHS=3"), "{line}");
    // Secrets by name only: docker reads the value from its own environment.
    assert!(line.contains("--env DB_PASSWORD "), "{line}");
    assert!(line.ends_with("example/train:v3 python train.py"), "{line}");
}

fn definition_error(text: &str, file: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), file, text);
    let name = file.split('.').next().unwrap();
    match Apps::new(dir.path()).load(name, true) {
        Err(e @ AppsError::Definition { .. }) => e.to_string(),
        other => panic!("expected a definition error, got {other:?}"),
    }
}

#[test]
fn bad_definitions_name_file_line_and_field() {
    let e = definition_error(
        "{\n  app: {\n    command: ['x'],\n  }\n  oops\n}\n",
        "syntax.jsonnet",
    );
    assert!(e.contains("syntax.jsonnet:5:3: syntax error"), "{e}");

    let e = definition_error(
        "{\n  app: {\n    command: ['x'],\n    env: {\n      PORT: 3000,\n    },\n  },\n}\n",
        "envnum.jsonnet",
    );
    assert!(
        e.contains("envnum.jsonnet:5: app.env.PORT: must be a string"),
        "{e}"
    );
    assert!(e.contains("write '3000'"), "{e}");

    let e = definition_error(
        "local x = { a: 1 };\n{\n  app: { command: ['x'], cpu: x.b },\n}\n",
        "runtime.jsonnet",
    );
    assert!(e.contains("runtime.jsonnet:3:"), "{e}");
    assert!(e.contains("no field `b`"), "{e}");

    let e = definition_error(
        "{ app: { command: ['x'], env: { A: std.native('provide.file')(std.toString({path: 'none.env'}), 'A') } } }",
        "provider.jsonnet",
    );
    assert!(e.contains("provide.file: cannot read"), "{e}");
    assert!(e.contains("none.env"), "{e}");

    let e = definition_error("{ app: { memory: '1g', command: ['x'] } }", "mem.jsonnet");
    assert!(
        e.contains("app.memory: must be a whole number of MiB"),
        "{e}"
    );

    let e = definition_error("{ app: { env: {} } }", "noimage.jsonnet");
    assert!(e.contains("needs an `image`"), "{e}");

    let e = definition_error(
        "{ scheduler: { type: 'nomad' }, app: { command: ['x'] } }",
        "sched.jsonnet",
    );
    assert!(
        e.contains("scheduler.type: `nomad` is not a scheduler"),
        "{e}"
    );

    let e = definition_error(
        "{ app: { command: ['x'] }, timeout: 'soon' }",
        "timeout.jsonnet",
    );
    assert!(e.contains("timeout: `soon` is not a duration"), "{e}");

    let e = definition_error("app:\n  command: [x\n", "yaml.yml");
    assert!(e.contains("yaml.yml:"), "{e}");
}

#[test]
fn unknown_fields_warn_with_their_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "typo.jsonnet",
        "{\n  app: {\n    command: ['true'],\n    memroy: 128,\n  },\n  scheduler: { type: 'local', clustr: 'x' },\n  extra: 1,\n}\n",
    );
    let def = Apps::new(dir.path()).load("typo", true).unwrap();
    let unknown: Vec<(&str, &str)> = def
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Unknown)
        .map(|n| (n.field.as_str(), n.location.as_str()))
        .collect();
    let loc = |line: usize| format!("{}:{line}", dir.path().join("typo.jsonnet").display());
    assert!(
        unknown.contains(&("app.memroy", loc(4).as_str())),
        "{unknown:?}"
    );
    assert!(
        unknown.contains(&("scheduler.clustr", loc(6).as_str())),
        "{unknown:?}"
    );
    assert!(unknown.contains(&("extra", loc(7).as_str())), "{unknown:?}");
}

#[test]
fn hakos_older_providers_key_expands_interpolations() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "old.env", "username=eagletmt\n");
    write(
        dir.path(),
        "old.json",
        r##"{"app": {"command": ["true"], "env": {"$providers": [{"type": "file", "path": "old.env"}], "MESSAGE": "#{username}-san"}}}"##,
    );
    let def = Apps::new(dir.path()).load("old", true).unwrap();
    assert_eq!(def.app.env["MESSAGE"], "eagletmt-san");
    assert!(!def.app.env.contains_key("$providers"));
}

#[test]
fn names_that_are_paths_are_refused() {
    let apps = hako();
    for bad in ["../etc/passwd", "a/b", ""] {
        assert!(apps.load(bad, false).is_err(), "{bad}");
    }
    assert!(matches!(
        apps.load("missing", false),
        Err(AppsError::NoSuchApp { .. })
    ));
}
