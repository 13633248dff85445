//! kuroko2's workflow language: one `type: option` per line, indentation nests, `#` starts
//! a comment (outside quotes). Read as kuroko2's `ScriptParser` reads it — a line indented
//! more than the one before is its child, as much is its sibling, less closes blocks back
//! to the line indented exactly as much (any other indentation is an error) — and each task
//! checked as kuroko2's tasks check their options, so a script written for kuroko2 that uses
//! only the tasks below loads unchanged. Errors name the line and the task.
//!
//! Tasks: `noop`, `sequence`, `fork`, `parallel_fork: N`, `env: K=V …`, `execute: SHELL`,
//! `queue: NAME`, `sub_process: JOB` (also `subprocess`), `timeout: N|Nm|Nh`,
//! `expected_time: N|Nm|Nh`, `wait: JOB/PERIOD … timeout=N`, `sleep: SECONDS`,
//! `echo: TEXT`, `retry: count=N sleep_time=S [backoff=exponential]`,
//! `auto_skip_error: true`; and kondate's own `app: NAME [ARGS…]`, `labels_sync: NAME`,
//! `results_export: NAME`.

/// A script that cannot be read, with the line (1-based) and the task it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", task.as_ref().map(|t| format!(" (`{t}`)")).unwrap_or_default())]
pub struct ScriptError {
    pub line: usize,
    pub task: Option<String>,
    pub message: String,
}

/// How often a `wait` looks for the job it waits for: in the same hour, day, week or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

/// The delay between a `retry`'s attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// `sleep_time` every time (kuroko2's).
    Fixed,
    /// `sleep_time`, then twice that, four times, …
    Exponential,
}

/// One task, its option read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// The script itself: its children run in order.
    Root,
    Noop,
    /// Its children in order.
    Sequence,
    /// Its children at once; done when all are.
    Fork,
    /// Its children, as one sequence, `n` times at once (each knows its index).
    ParallelFork(u32),
    /// Variables for the rest of its block (and its children), in order.
    Env(Vec<(String, String)>),
    /// A shell command.
    Execute(String),
    /// The named pool of workers that runs the following `execute`s.
    Queue(String),
    /// Another job, run to its end.
    SubProcess(String),
    /// Minutes the following steps may take before they are stopped.
    Timeout(u32),
    /// Minutes the job is expected to take; longer is reported.
    ExpectedTime(u32),
    /// Wait for each job to have finished in the same period, for at most `timeout_minutes`.
    Wait {
        jobs: Vec<(String, Period)>,
        timeout_minutes: u32,
    },
    /// Seconds to wait.
    Sleep(u64),
    /// A line for the log.
    Echo(String),
    /// Retry the children up to `count` times.
    Retry {
        count: u32,
        sleep_seconds: u64,
        backoff: Backoff,
    },
    /// Whether a failed step is skipped instead of stopping the job.
    AutoSkipError(bool),
    /// An app of the project, with arguments.
    App {
        name: String,
        args: Vec<String>,
    },
    /// Sync a label set.
    LabelsSync(String),
    /// Export a result table to the warehouse.
    ResultsExport(String),
    /// Sync the catalog: `all` its sources, or one.
    CatalogSync(String),
}

/// A task at a line of the script, with the tasks nested under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub task: Task,
    /// 1-based; 0 for the root.
    pub line: usize,
    pub children: Vec<Node>,
}

/// Read and check `script`.
pub fn parse(script: &str) -> Result<Node, ScriptError> {
    // kuroko2 keeps a stack of open nodes and of their indentations; a node is a path of
    // child indices here, resolved when it gets a child.
    let mut root = Node {
        task: Task::Root,
        line: 0,
        children: Vec::new(),
    };
    let mut open: Vec<(usize, usize)> = Vec::new(); // (indent, index among its parent's children)
    for (no, raw) in script.lines().enumerate() {
        let line = no + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some((kind, rest)) = trimmed.split_once(':') else {
            return Err(error(line, None, "syntax error: write `type: option`"));
        };
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(error(line, None, "syntax error: write `type: option`"));
        }
        let option = strip_comment(rest).trim().to_string();
        let option = (!option.is_empty()).then_some(option);
        let task = task(line, kind, option.as_deref())?;
        // Where it goes: under the nearest open line indented less.
        while let Some(&(top, _)) = open.last() {
            if indent > top {
                break;
            }
            if indent < top && !open.iter().any(|&(i, _)| i == indent) {
                return Err(error(line, Some(kind), "inconsistent indentation"));
            }
            open.pop();
        }
        let parent = open.iter().fold(&mut root, |n, &(_, i)| &mut n.children[i]);
        parent.children.push(Node {
            task,
            line,
            children: Vec::new(),
        });
        let index = parent.children.len() - 1;
        open.push((indent, index));
    }
    check_tree(&root)?;
    Ok(root)
}

fn error(line: usize, task: Option<&str>, message: impl Into<String>) -> ScriptError {
    ScriptError {
        line,
        task: task.map(str::to_string),
        message: message.into(),
    }
}

/// The option without its comment: from a `#` outside quotes on.
fn strip_comment(s: &str) -> &str {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (_, _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') => return &s[..i],
            _ => {}
        }
    }
    s
}

/// Minutes in `N`, `Nm` or `Nh`.
pub(crate) fn minutes(s: &str) -> Option<u32> {
    let (digits, factor) = match s.strip_suffix('h') {
        Some(d) => (d, 60),
        None => (s.strip_suffix('m').unwrap_or(s), 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok()?.checked_mul(factor)
}

/// A job, label set, result table or app name, or a kuroko2 job id.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn task(line: usize, kind: &str, option: Option<&str>) -> Result<Task, ScriptError> {
    let fail = |m: String| Err(error(line, Some(kind), m));
    let need = |what: &str| -> Result<&str, ScriptError> {
        option.ok_or_else(|| error(line, Some(kind), format!("needs {what}")))
    };
    Ok(match kind {
        "noop" => Task::Noop,
        "sequence" => Task::Sequence,
        "fork" => Task::Fork,
        "parallel_fork" => match need("a number of branches")?.parse::<u32>() {
            Ok(n) if n > 0 => Task::ParallelFork(n),
            _ => return fail("the number of branches must be a whole number above 0".into()),
        },
        "env" => Task::Env(parse_env(need("K=V pairs")?).map_err(|m| error(line, Some(kind), m))?),
        "execute" => Task::Execute(need("a shell command")?.to_string()),
        "queue" => {
            let q = need("a queue name")?;
            let body = q.strip_prefix('@').unwrap_or(q);
            if body.is_empty()
                || body.len() > 180
                || !body
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return fail(format!(
                    "`{q}` is not a queue name: letters, digits, `_` and `-`, at most 180"
                ));
            }
            Task::Queue(q.to_string())
        }
        "sub_process" | "subprocess" => {
            let job = need("a job")?;
            if !is_name(job) {
                return fail(format!("`{job}` is not a job name"));
            }
            Task::SubProcess(job.to_string())
        }
        "timeout" | "expected_time" => {
            let Some(m) = option.and_then(minutes) else {
                return fail("the value must be a number of minutes: N, Nm or Nh".into());
            };
            if kind == "timeout" {
                Task::Timeout(m)
            } else {
                Task::ExpectedTime(m)
            }
        }
        "wait" => parse_wait(need("JOB/PERIOD")?).map_err(|m| error(line, Some(kind), m))?,
        "sleep" => match need("a number of seconds")?.parse::<u64>() {
            Ok(s) if option.is_some_and(|o| o.bytes().all(|b| b.is_ascii_digit())) => {
                Task::Sleep(s)
            }
            _ => return fail("the value must be a number of seconds".into()),
        },
        "echo" => Task::Echo(option.unwrap_or_default().to_string()),
        "retry" => parse_retry(need("count=N")?).map_err(|m| error(line, Some(kind), m))?,
        "auto_skip_error" => Task::AutoSkipError(matches!(option, Some("1" | "true" | "TRUE"))),
        "app" => {
            let mut words = need("an app name")?.split_whitespace();
            let name = words.next().unwrap_or_default();
            if !is_name(name) {
                return fail(format!("`{name}` is not an app name"));
            }
            Task::App {
                name: name.to_string(),
                args: words.map(str::to_string).collect(),
            }
        }
        "catalog_sync" => {
            let source = need("`all` or a catalog source")?;
            if !is_name(source) {
                return fail(format!("`{source}` is not a catalog source"));
            }
            Task::CatalogSync(source.to_string())
        }
        "labels_sync" | "results_export" => {
            let name = need("a name")?;
            if !is_name(name) {
                return fail(format!("`{name}` is not a name"));
            }
            if kind == "labels_sync" {
                Task::LabelsSync(name.to_string())
            } else {
                Task::ResultsExport(name.to_string())
            }
        }
        "rails_env" | "kuroko_runner" => {
            return fail(
                "is kuroko2's own Rails task, which kondate does not run; use `execute:`".into(),
            );
        }
        other => {
            return fail(format!(
                "`{other}` is not a task; the tasks are noop, sequence, fork, parallel_fork, \
                 env, execute, queue, sub_process, timeout, expected_time, wait, sleep, echo, \
                 retry, auto_skip_error, app, labels_sync, results_export, catalog_sync"
            ));
        }
    })
}

/// `K=V K="quoted value" K='…'`, as kuroko2's `env` reads them.
fn parse_env(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let key_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (key, after) = rest.split_at(key_len);
        let Some(after) = after.strip_prefix('=').filter(|_| !key.is_empty()) else {
            return Err(format!("`{rest}`: write K=V, K=\"V\" or K='V'"));
        };
        let (value, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &after[1..];
                let mut end = None;
                let mut escaped = false;
                for (i, c) in body.char_indices() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == q {
                        end = Some(i);
                        break;
                    }
                }
                let Some(end) = end else {
                    return Err(format!("{key}: the quote is not closed"));
                };
                let value = body[..end].replace(&format!("\\{q}"), &q.to_string());
                (value, &body[end + 1..])
            }
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                if end == 0 {
                    return Err(format!("{key}: no value after `=`"));
                }
                (after[..end].to_string(), &after[end..])
            }
        };
        out.push((key.to_string(), value));
        rest = next.trim_start();
    }
    Ok(out)
}

/// `JOB/PERIOD … timeout=N[h|m]` (60 minutes when left out).
fn parse_wait(s: &str) -> Result<Task, String> {
    let mut jobs = Vec::new();
    let mut timeout_minutes = 60;
    for word in s.split(|c: char| c.is_whitespace() || c == ',') {
        if word.is_empty() {
            continue;
        }
        if let Some(t) = word.strip_prefix("timeout=") {
            timeout_minutes =
                minutes(t).ok_or_else(|| format!("timeout=`{t}`: write N, Nm or Nh"))?;
            continue;
        }
        let Some((job, period)) = word.split_once('/') else {
            return Err(format!("`{word}`: write JOB/PERIOD, e.g. train/daily"));
        };
        let period = match period.trim() {
            "hourly" => Period::Hourly,
            "daily" => Period::Daily,
            "weekly" => Period::Weekly,
            "monthly" => Period::Monthly,
            p => {
                return Err(format!(
                    "`{p}` is not a period: hourly, daily, weekly or monthly"
                ));
            }
        };
        if !is_name(job.trim()) {
            return Err(format!("`{job}` is not a job name"));
        }
        jobs.push((job.trim().to_string(), period));
    }
    if jobs.is_empty() {
        return Err("names no job to wait for (JOB/PERIOD)".into());
    }
    Ok(Task::Wait {
        jobs,
        timeout_minutes,
    })
}

/// `count=N sleep_time=S backoff=exponential`.
fn parse_retry(s: &str) -> Result<Task, String> {
    let (mut count, mut sleep_seconds, mut backoff) = (None, 0, Backoff::Fixed);
    for word in s.split(|c: char| c.is_whitespace() || c == ',') {
        match word.split_once('=') {
            None if word.is_empty() => {}
            Some(("count", n)) => {
                count = Some(
                    n.parse()
                        .map_err(|_| format!("count=`{n}`: a whole number"))?,
                )
            }
            Some(("sleep_time", n)) => {
                sleep_seconds = n
                    .parse()
                    .map_err(|_| format!("sleep_time=`{n}`: a number of seconds"))?
            }
            Some(("backoff", "exponential")) => backoff = Backoff::Exponential,
            Some(("backoff", "fixed")) => backoff = Backoff::Fixed,
            _ => {
                return Err(format!(
                    "`{word}`: write count=N, sleep_time=SECONDS, backoff=exponential"
                ));
            }
        }
    }
    let Some(count) = count else {
        return Err("count=N is required".into());
    };
    Ok(Task::Retry {
        count,
        sleep_seconds,
        backoff,
    })
}

/// What a task needs of its place in the tree: a fork has branches; a task that runs
/// nothing itself has no children but where it scopes them.
fn check_tree(node: &Node) -> Result<(), ScriptError> {
    let name = match &node.task {
        Task::Fork => Some("fork"),
        Task::ParallelFork(_) => Some("parallel_fork"),
        _ => None,
    };
    if let Some(name) = name
        && node.children.is_empty()
    {
        return Err(error(
            node.line,
            Some(name),
            "needs the tasks to run indented under it",
        ));
    }
    node.children.iter().try_for_each(check_tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(n: &Node) -> Vec<(usize, Task, usize)> {
        let mut out = vec![(n.line, n.task.clone(), n.children.len())];
        for c in &n.children {
            out.extend(tasks(c));
        }
        out
    }

    #[test]
    fn kuroko2_scripts_load_with_their_nesting() {
        // As in kuroko2's README and test suite.
        let script = "\
# a comment
env: GREETING='hello world' NAME=\"a \\\"b\\\"\" X=1
timeout: 2h
fork:
  execute: echo $GREETING # says hello
  sequence:
    noop:
    sleep: 5
  execute: echo 'not # a comment'
parallel_fork: 3
  execute: echo $KONDATE_PARALLEL_FORK_INDEX
retry: count=3 sleep_time=10
  execute: flaky
wait: train/daily 7/weekly timeout=90m
sub_process: 42
auto_skip_error: true
";
        let root = parse(script).unwrap();
        let t = tasks(&root);
        assert_eq!(t[0], (0, Task::Root, 8));
        assert_eq!(
            t[1].1,
            Task::Env(vec![
                ("GREETING".into(), "hello world".into()),
                ("NAME".into(), "a \"b\"".into()),
                ("X".into(), "1".into())
            ])
        );
        assert_eq!(t[2].1, Task::Timeout(120));
        assert_eq!(t[3], (4, Task::Fork, 3));
        assert_eq!(t[4].1, Task::Execute("echo $GREETING".into()));
        assert_eq!(t[5], (6, Task::Sequence, 2));
        assert_eq!(t[6].1, Task::Noop);
        assert_eq!(t[7].1, Task::Sleep(5));
        assert_eq!(t[8].1, Task::Execute("echo 'not # a comment'".into()));
        assert_eq!(t[9], (10, Task::ParallelFork(3), 1));
        assert_eq!(
            t[11].1,
            Task::Retry {
                count: 3,
                sleep_seconds: 10,
                backoff: Backoff::Fixed
            }
        );
        assert_eq!(
            t[13].1,
            Task::Wait {
                jobs: vec![
                    ("train".into(), Period::Daily),
                    ("7".into(), Period::Weekly)
                ],
                timeout_minutes: 90
            }
        );
        assert_eq!(t[14].1, Task::SubProcess("42".into()));
        assert_eq!(t[15].1, Task::AutoSkipError(true));
    }

    #[test]
    fn kondate_tasks_load() {
        let root =
            parse("app: train --epochs 3\nlabels_sync: recipe_category\nresults_export: scores\ncatalog_sync: all\n")
                .unwrap();
        assert_eq!(
            root.children[0].task,
            Task::App {
                name: "train".into(),
                args: vec!["--epochs".into(), "3".into()]
            }
        );
        assert_eq!(
            root.children[1].task,
            Task::LabelsSync("recipe_category".into())
        );
        assert_eq!(root.children[2].task, Task::ResultsExport("scores".into()));
        assert_eq!(root.children[3].task, Task::CatalogSync("all".into()));
        let e = parse("catalog_sync:\n").unwrap_err().to_string();
        assert!(e.contains("`all` or a catalog source"), "{e}");
    }

    /// The cases of kuroko2's own parser spec (spec/workflow/script_parser_spec.rb), with
    /// its custom tasks replaced by `noop`/`echo`.
    #[test]
    fn kuroko2s_parser_cases() {
        let root =
            parse("# comment\nnoop: # comment\n  echo: option\n\necho: option # comment\nenv: OPTION='#option' # comment\n")
                .unwrap();
        assert_eq!(root.children.len(), 3);
        assert_eq!(
            root.children[0].children[0].task,
            Task::Echo("option".into())
        );
        assert_eq!(root.children[1].task, Task::Echo("option".into()));
        assert_eq!(
            root.children[2].task,
            Task::Env(vec![("OPTION".into(), "#option".into())])
        );
        let root = parse(
            "noop:\n  noop: option\n    noop: option\n  noop:\n    noop: option\n    noop: option\nnoop:\n",
        )
        .unwrap();
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.children[0].children.len(), 2);
        assert_eq!(root.children[0].children[0].children.len(), 1);
        assert_eq!(root.children[0].children[1].children.len(), 2);
        for bad in [
            ":",
            "noop\n",
            "noop:\n    noop: option\n  noop: option\n",
            "fork:\n  timeout: a\n  noop:\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dedenting_closes_blocks_to_the_same_indentation() {
        let root = parse("sequence:\n  sequence:\n    noop:\n  noop:\nnoop:\n").unwrap();
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.children[0].children.len(), 2);
        assert_eq!(root.children[0].children[0].children.len(), 1);
    }

    #[test]
    fn errors_name_the_line_and_the_task() {
        for (script, line, says) in [
            ("noop:\nexecute\n", 2, "syntax error"),
            (
                "sequence:\n    noop:\n  noop:\n",
                3,
                "inconsistent indentation",
            ),
            (
                "fork:\nnoop:\n",
                1,
                "needs the tasks to run indented under it",
            ),
            ("parallel_fork: x\n  noop:\n", 1, "whole number above 0"),
            ("timeout: 5s\n", 1, "N, Nm or Nh"),
            ("sleep: 1.5\n", 1, "number of seconds"),
            ("retry: sleep_time=3\n", 1, "count=N is required"),
            ("wait: train/yearly\n", 1, "is not a period"),
            ("env: =x\n", 1, "write K=V"),
            ("env: A=\"open\n", 1, "quote is not closed"),
            ("queue: a b\n", 1, "is not a queue name"),
            ("rails_env: production\n", 1, "use `execute:`"),
            ("bogus: 1\n", 1, "`bogus` is not a task"),
            ("execute:\n", 1, "needs a shell command"),
            ("app: ../x\n", 1, "is not an app name"),
        ] {
            let e = parse(script).unwrap_err();
            assert_eq!(e.line, line, "{script:?}: {e}");
            assert!(e.to_string().contains(says), "{script:?}: {e}");
        }
        let e = parse("noop:\ntimeout: 5s\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2 (`timeout`): the value must be a number of minutes: N, Nm or Nh"
        );
    }
}
