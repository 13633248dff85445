//! What a definition becomes on a container scheduler:
//!
//! - **ECS**: the RegisterTaskDefinition request (Hako's mapping: family = the app's name,
//!   the app container named `app`, sidecars by their names, cpu/memory, environment,
//!   secrets passed through as `valueFrom`) and the RunTask request (cluster, launch type,
//!   network configuration, command and environment overrides on `app`), in the ECS API's
//!   JSON (camelCase), ready for `aws ecs register-task-definition --cli-input-json`.
//! - **Kubernetes**: a `batch/v1` Job (requests/limits, env, secrets as `secretKeyRef`).
//! - **Docker**: the `docker run` argument list. Secret values are never in it: a secret is
//!   passed as `-e NAME`, which docker reads from its own environment.

use serde_json::{Map, Value, json};

use crate::AppsError;
use crate::definition::{AppDefinition, Container};

/// A render's overrides: what `kondate apps run NAME -e K=V -- CMD` adds.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
}

fn image_of<'a>(c: &'a Container, field: &str, target: &str) -> Result<&'a str, AppsError> {
    c.image.as_deref().ok_or_else(|| {
        AppsError::Invalid(format!(
            "{field}.image is needed to render for {target}: a container runs an image \
             (the local runner alone can run a bare command)"
        ))
    })
}

/// `snake_case` → `camelCase`.
fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Hako writes ECS fields in snake_case (as the Ruby SDK does); the ECS API's JSON is
/// camelCase. Keys under these fields are the user's own (log driver options, labels) and
/// stay as written.
const VERBATIM_KEYS: &[&str] = &["options", "docker_labels", "driver_opts", "labels"];

fn to_api(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if VERBATIM_KEYS.contains(&k.as_str()) {
                        v.clone()
                    } else {
                        to_api(v)
                    };
                    (camel(k), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(to_api).collect()),
        other => other.clone(),
    }
}

fn env_list(env: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Array(
        env.into_iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect(),
    )
}

fn ecs_container(name: &str, c: &Container, field: &str) -> Result<Value, AppsError> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("image".into(), json!(image_of(c, field, "ecs")?));
    m.insert("cpu".into(), json!(c.cpu.unwrap_or(0)));
    if let Some(mem) = c.memory {
        m.insert("memory".into(), json!(mem));
    }
    if let Some(r) = c.memory_reservation {
        m.insert("memoryReservation".into(), json!(r));
    }
    m.insert("essential".into(), json!(true));
    m.insert(
        "environment".into(),
        env_list(c.env.iter().map(|(k, v)| (k.clone(), v.clone()))),
    );
    if !c.secrets.is_empty() {
        m.insert(
            "secrets".into(),
            Value::Array(
                c.secrets
                    .iter()
                    .map(|s| json!({"name": s.name, "valueFrom": s.value_from}))
                    .collect(),
            ),
        );
    }
    if let Some(cmd) = &c.command {
        m.insert("command".into(), json!(cmd));
    }
    if let Some(ep) = &c.entry_point {
        m.insert("entryPoint".into(), json!(ep));
    }
    if let Some(wd) = &c.working_dir {
        m.insert("workingDirectory".into(), json!(wd));
    }
    for (k, v) in &c.extra {
        m.insert(camel(k), to_api(v));
    }
    Ok(Value::Object(m))
}

/// The ECS RegisterTaskDefinition and RunTask requests, as `{"taskDefinition": …,
/// "runTask": …}`.
pub fn ecs(def: &AppDefinition, o: &Overrides) -> Result<Value, AppsError> {
    let s = &def.scheduler_settings;
    if !s.contains_key("region") {
        return Err(AppsError::Invalid(format!(
            "{}: scheduler.region must be set to render for ECS (Hako requires it too)",
            def.path.display()
        )));
    }
    let mut containers = vec![ecs_container("app", &def.app, "app")?];
    for (name, c) in &def.sidecars {
        containers.push(ecs_container(name, c, &format!("sidecars.{name}"))?);
    }
    let mut task = Map::new();
    task.insert("family".into(), json!(def.name));
    for key in [
        "task_role_arn",
        "execution_role_arn",
        "network_mode",
        "requires_compatibilities",
    ] {
        if let Some(v) = s.get(key) {
            task.insert(camel(key), to_api(v));
        }
    }
    // Task-level cpu and memory are strings in the ECS API (Fargate: '1024', '2048').
    for key in ["cpu", "memory"] {
        if let Some(v) = s.get(key) {
            let v = match v {
                Value::Number(n) => json!(n.to_string()),
                other => other.clone(),
            };
            task.insert(key.into(), v);
        }
    }
    task.insert("containerDefinitions".into(), Value::Array(containers));
    let volumes: Vec<Value> = def
        .volumes
        .iter()
        .map(|(name, v)| {
            let mut vol = Map::new();
            vol.insert("name".into(), json!(name));
            if let Some(cfg) = v.get("docker_volume_configuration") {
                vol.insert("dockerVolumeConfiguration".into(), to_api(cfg));
            } else {
                vol.insert(
                    "host".into(),
                    json!({"sourcePath": v.get("source_path").cloned().unwrap_or(Value::Null)}),
                );
            }
            Value::Object(vol)
        })
        .collect();
    task.insert("volumes".into(), Value::Array(volumes));
    let tags: Vec<Value> = s
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    json!({"key": k, "value": v})
                })
                .collect()
        })
        .unwrap_or_default();
    if !tags.is_empty() {
        task.insert("tags".into(), Value::Array(tags));
    }

    let mut run = Map::new();
    run.insert(
        "cluster".into(),
        s.get("cluster").cloned().unwrap_or(json!("default")),
    );
    run.insert("taskDefinition".into(), json!(def.name));
    run.insert("count".into(), json!(1));
    run.insert("startedBy".into(), json!("kondate"));
    for key in [
        "launch_type",
        "platform_version",
        "network_configuration",
        "capacity_provider_strategy",
        "placement_constraints",
        "placement_strategy",
    ] {
        if let Some(v) = s.get(key) {
            run.insert(camel(key), to_api(v));
        }
    }
    run.insert("propagateTags".into(), json!("TASK_DEFINITION"));
    let mut app_override = Map::new();
    app_override.insert("name".into(), json!("app"));
    if let Some(cmd) = &o.command {
        app_override.insert("command".into(), json!(cmd));
    }
    app_override.insert("environment".into(), env_list(o.env.iter().cloned()));
    run.insert(
        "overrides".into(),
        json!({"containerOverrides": [Value::Object(app_override)]}),
    );
    Ok(json!({"taskDefinition": Value::Object(task), "runTask": Value::Object(run)}))
}

/// A name Kubernetes accepts (DNS-1123 label): lowercase letters, digits and `-`.
fn dns_label(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-');
    s.chars().take(52).collect()
}

/// ECS CPU units → Kubernetes millicores (1024 units = 1 CPU = 1000m).
fn millicores(units: u64) -> String {
    format!("{}m", (units * 1000).div_ceil(1024).max(1))
}

fn k8s_container(
    name: &str,
    c: &Container,
    field: &str,
    secret_name: &str,
    o: Option<&Overrides>,
) -> Result<Value, AppsError> {
    let mut m = Map::new();
    m.insert("name".into(), json!(dns_label(name)));
    m.insert("image".into(), json!(image_of(c, field, "kubernetes")?));
    if let Some(ep) = &c.entry_point {
        m.insert("command".into(), json!(ep));
    }
    let command = o.and_then(|o| o.command.as_ref()).or(c.command.as_ref());
    if let Some(cmd) = command {
        m.insert("args".into(), json!(cmd));
    }
    if let Some(wd) = &c.working_dir {
        m.insert("workingDir".into(), json!(wd));
    }
    let mut env: Vec<Value> = Vec::new();
    let mut plain: Vec<(String, String)> =
        c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(o) = o {
        for (k, v) in &o.env {
            plain.retain(|(n, _)| n != k);
            plain.push((k.clone(), v.clone()));
        }
    }
    for (k, v) in plain {
        env.push(json!({"name": k, "value": v}));
    }
    for s in &c.secrets {
        let (secret, key) = match s.value_from.strip_prefix("k8s:") {
            Some(r) => match r.split_once('/') {
                Some((secret, key)) => (secret.to_string(), key.to_string()),
                None => (r.to_string(), s.name.clone()),
            },
            None => (secret_name.to_string(), s.name.clone()),
        };
        env.push(
            json!({"name": s.name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}),
        );
    }
    if !env.is_empty() {
        m.insert("env".into(), Value::Array(env));
    }
    let mut requests = Map::new();
    let mut limits = Map::new();
    if let Some(cpu) = c.cpu.filter(|&u| u > 0) {
        requests.insert("cpu".into(), json!(millicores(cpu)));
    }
    if let Some(mem) = c.memory {
        limits.insert("memory".into(), json!(format!("{mem}Mi")));
    }
    if let Some(mem) = c.memory_reservation.or(c.memory) {
        requests.insert("memory".into(), json!(format!("{mem}Mi")));
    }
    if !requests.is_empty() || !limits.is_empty() {
        let mut r = Map::new();
        if !requests.is_empty() {
            r.insert("requests".into(), Value::Object(requests));
        }
        if !limits.is_empty() {
            r.insert("limits".into(), Value::Object(limits));
        }
        m.insert("resources".into(), Value::Object(r));
    }
    Ok(Value::Object(m))
}

/// A Kubernetes `batch/v1` Job that runs the app once.
pub fn kubernetes(def: &AppDefinition, o: &Overrides) -> Result<Value, AppsError> {
    let s = &def.scheduler_settings;
    let name = dns_label(&def.name);
    let secret_name = s
        .get("secret_name")
        .and_then(Value::as_str)
        .map_or_else(|| name.clone(), str::to_string);
    let mut containers = vec![k8s_container(
        "app",
        &def.app,
        "app",
        &secret_name,
        Some(o),
    )?];
    for (n, c) in &def.sidecars {
        containers.push(k8s_container(
            n,
            c,
            &format!("sidecars.{n}"),
            &secret_name,
            None,
        )?);
    }
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "kondate"});
    let mut pod = Map::new();
    pod.insert("restartPolicy".into(), json!("Never"));
    if let Some(sa) = s.get("service_account_name") {
        pod.insert("serviceAccountName".into(), sa.clone());
    }
    if let Some(ns) = s.get("node_selector") {
        pod.insert("nodeSelector".into(), ns.clone());
    }
    if let Some(ips) = s.get("image_pull_secrets").and_then(Value::as_array) {
        pod.insert(
            "imagePullSecrets".into(),
            Value::Array(
                ips.iter()
                    .map(|n| json!({"name": n.as_str().unwrap_or_default()}))
                    .collect(),
            ),
        );
    }
    pod.insert("containers".into(), Value::Array(containers));
    let mut spec = Map::new();
    spec.insert("backoffLimit".into(), json!(def.retries));
    if let Some(t) = def.timeout {
        spec.insert("activeDeadlineSeconds".into(), json!(t.as_secs().max(1)));
    }
    if let Some(ttl) = s.get("ttl_seconds_after_finished") {
        spec.insert("ttlSecondsAfterFinished".into(), ttl.clone());
    }
    spec.insert(
        "template".into(),
        json!({"metadata": {"labels": labels}, "spec": Value::Object(pod)}),
    );
    let mut meta = Map::new();
    meta.insert("generateName".into(), json!(format!("{name}-")));
    if let Some(ns) = s.get("namespace") {
        meta.insert("namespace".into(), ns.clone());
    }
    meta.insert("labels".into(), labels);
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": Value::Object(meta),
        "spec": Value::Object(spec),
    }))
}

/// The `docker run` argument list (starting with the docker binary). `name` names the
/// container (the run id, so that a run can be stopped by name). `pass_env` names
/// variables docker passes on from its own environment (the run contract: its token must
/// not be in an argument list, which every user of the machine can read).
pub fn docker_argv(
    def: &AppDefinition,
    o: &Overrides,
    name: &str,
    pass_env: &[String],
) -> Result<Vec<String>, AppsError> {
    let c = &def.app;
    let image = image_of(c, "app", "docker")?;
    let s = &def.scheduler_settings;
    let docker = s
        .get("docker")
        .and_then(Value::as_str)
        .unwrap_or("docker")
        .to_string();
    let mut a: Vec<String> = vec![
        docker,
        "run".into(),
        "--rm".into(),
        "--init".into(),
        "--name".into(),
        name.into(),
        "--label".into(),
        format!("kondate.app={}", def.name),
    ];
    if let Some(cpu) = c.cpu.filter(|&u| u > 0) {
        a.push("--cpus".into());
        a.push(format!("{:.3}", cpu as f64 / 1024.0));
    }
    if let Some(mem) = c.memory {
        a.push("--memory".into());
        a.push(format!("{mem}m"));
    }
    if let Some(mem) = c.memory_reservation {
        a.push("--memory-reservation".into());
        a.push(format!("{mem}m"));
    }
    if let Some(wd) = &c.working_dir {
        a.push("--workdir".into());
        a.push(wd.clone());
    }
    if let Some(user) = &c.user {
        a.push("--user".into());
        a.push(user.clone());
    }
    if let Some(net) = s.get("network").and_then(Value::as_str) {
        a.push("--network".into());
        a.push(net.into());
    }
    for mp in &c.mount_points {
        let source = def
            .volumes
            .get(&mp.source_volume)
            .and_then(|v| v.get("source_path"))
            .and_then(Value::as_str)
            .map_or_else(|| mp.source_volume.clone(), str::to_string);
        let ro = if mp.read_only { ":ro" } else { "" };
        a.push("--volume".into());
        a.push(format!("{source}:{}{ro}", mp.container_path));
    }
    let mut env: Vec<(String, String)> =
        c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in &o.env {
        env.retain(|(n, _)| n != k);
        env.push((k.clone(), v.clone()));
    }
    let by_name: Vec<&String> = c.secrets.iter().map(|s| &s.name).chain(pass_env).collect();
    env.retain(|(n, _)| !by_name.contains(&n));
    for (k, v) in env {
        a.push("--env".into());
        a.push(format!("{k}={v}"));
    }
    // Only the name: docker takes the value from its own environment, so it is never in
    // the argument list (visible to every user of the machine).
    for n in by_name {
        a.push("--env".into());
        a.push(n.clone());
    }
    let mut args: Vec<String> = Vec::new();
    if let Some(ep) = &c.entry_point {
        a.push("--entrypoint".into());
        a.push(ep[0].clone());
        args.extend(ep[1..].iter().cloned());
    }
    a.push(image.to_string());
    args.extend(
        o.command
            .clone()
            .or_else(|| c.command.clone())
            .unwrap_or_default(),
    );
    a.extend(args);
    Ok(a)
}

/// Quote an argument for a POSIX shell, for showing an argument list as one line.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_units_convert() {
        assert_eq!(camel("task_role_arn"), "taskRoleArn");
        assert_eq!(dns_label("Recipe_Train"), "recipe-train");
        assert_eq!(millicores(1024), "1000m");
        assert_eq!(millicores(256), "250m");
        assert_eq!(millicores(1), "1m");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_quote("--env=X"), "--env=X");
    }

    #[test]
    fn user_keys_stay_as_written() {
        let v = json!({"log_driver": "awslogs", "options": {"awslogs-group": "g", "a_b": 1}});
        assert_eq!(
            to_api(&v),
            json!({"logDriver": "awslogs", "options": {"awslogs-group": "g", "a_b": 1}})
        );
    }
}
