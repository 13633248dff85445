//! Where an instance stands: its script's tree walked against what its steps did so far,
//! giving the steps that may run now, or that it is done, or where it failed. Pure — the
//! executor records each step's outcome under its key and walks again after every change,
//! so any process can advance any instance and two that do it at once create each step once
//! (its key is unique within the instance).
//!
//! The semantics are kuroko2's:
//! - A block (the script, `sequence`, and the children of any task) runs its children in
//!   order; a failed step stops it, unless `auto_skip_error: true` was said before it in the
//!   block, which goes on after it.
//! - `env`, `queue`, `timeout` and `auto_skip_error` apply to the rest of their block and to
//!   their own children; never outside the block (a `fork` branch's `env` stays in it).
//! - `fork` runs its children at once, each a block of its own; `parallel_fork: N` runs its
//!   children as one block N times at once, each with `KONDATE_PARALLEL_FORK_INDEX` (0…N-1)
//!   and `KONDATE_PARALLEL_FORK_SIZE`. Either is done when every branch is, and failed when
//!   one failed and the others are done.
//! - `retry: count=N sleep_time=S` runs its children as a block up to N more times after a
//!   failure, sleeping S seconds before each (twice as long each time with
//!   `backoff=exponential`); the steps of each attempt have keys of their own.
//! - Leaves are steps: `execute`, `app`, `labels_sync`, `results_export`, `sub_process`,
//!   `wait`, `sleep`, `echo`, `noop`.
//!
//! A step's key names its line, qualified by the branch and the attempt it is in:
//! `L3`, `L5#2/L6` (line 6 in branch 2 of the `parallel_fork` on line 5), `L8@1/L9`
//! (line 9 in the second attempt of the `retry` on line 8), `L8@0/sleep` (the wait before
//! that attempt).

use std::collections::HashMap;

use crate::script::{Backoff, Node, Task};

/// What one step did (or is doing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded, not yet claimed by a worker.
    Pending,
    Working,
    Success,
    /// Failed, with why.
    Error(String),
    /// Failed and skipped by an operator: the block goes on after it.
    Skipped,
}

/// A step the walk says may run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    /// Unique within the instance (see the module).
    pub key: String,
    /// The script's line (0 for a retry's wait).
    pub line: usize,
    pub task: Task,
    /// The variables in scope, in the order they were set (later ones win).
    pub env: Vec<(String, String)>,
    /// The worker pool that runs it: the last `queue:` in scope, else `default`.
    pub queue: String,
    /// Minutes it may take: the last `timeout:` in scope.
    pub timeout_minutes: Option<u32>,
}

/// Where the instance stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walk {
    /// Every step succeeded (or was skipped).
    Done,
    /// This step failed and nothing else is running: the instance is in ERROR.
    Failed { key: String, message: String },
    /// Steps are running or may run: these are the ones not recorded yet (possibly none,
    /// when everything runnable is already pending or working).
    Waiting(Vec<StepSpec>),
}

/// The queue of steps when the script names none.
pub const DEFAULT_QUEUE: &str = "default";

#[derive(Debug, Clone)]
struct Ctx {
    env: Vec<(String, String)>,
    queue: String,
    timeout: Option<u32>,
    auto_skip: bool,
}

/// Walk `script` (the root of a parsed script) against `outcomes`, by step key.
pub fn walk(script: &Node, outcomes: &HashMap<String, Outcome>) -> Walk {
    let ctx = Ctx {
        env: Vec::new(),
        queue: DEFAULT_QUEUE.to_string(),
        timeout: None,
        auto_skip: false,
    };
    block(&script.children, ctx, "", outcomes)
}

/// The children of a node, in order, in a context of their own.
fn block(children: &[Node], mut ctx: Ctx, prefix: &str, o: &HashMap<String, Outcome>) -> Walk {
    for child in children {
        // Settings change the context for the rest of the block, and for their children.
        let setting = match &child.task {
            Task::Env(vars) => {
                ctx.env.extend(vars.iter().cloned());
                true
            }
            Task::Queue(q) => {
                ctx.queue = q.clone();
                true
            }
            Task::Timeout(m) => {
                ctx.timeout = Some(*m);
                true
            }
            Task::AutoSkipError(on) => {
                ctx.auto_skip = *on;
                true
            }
            // The instance's expected time is read from the script by the executor.
            Task::ExpectedTime(_) => true,
            _ => false,
        };
        let result = if setting {
            if child.children.is_empty() {
                continue;
            }
            block(&child.children, ctx.clone(), prefix, o)
        } else {
            node(child, &ctx, prefix, o)
        };
        match result {
            Walk::Done => {}
            Walk::Failed { .. } if ctx.auto_skip => {}
            other => return other,
        }
    }
    Walk::Done
}

/// Branches running at once: waiting while any waits, else failed if one failed.
fn gather(branches: impl Iterator<Item = Walk>) -> Walk {
    let mut waiting: Option<Vec<StepSpec>> = None;
    let mut failed = None;
    for b in branches {
        match b {
            Walk::Done => {}
            Walk::Waiting(specs) => waiting.get_or_insert_with(Vec::new).extend(specs),
            f @ Walk::Failed { .. } => {
                failed.get_or_insert(f);
            }
        }
    }
    match (waiting, failed) {
        (Some(specs), _) => Walk::Waiting(specs),
        (None, Some(f)) => f,
        (None, None) => Walk::Done,
    }
}

fn node(n: &Node, ctx: &Ctx, prefix: &str, o: &HashMap<String, Outcome>) -> Walk {
    match &n.task {
        Task::Sequence | Task::Root => block(&n.children, ctx.clone(), prefix, o),
        Task::Fork => gather(
            n.children
                .iter()
                .map(|c| block(std::slice::from_ref(c), ctx.clone(), prefix, o)),
        ),
        Task::ParallelFork(size) => gather((0..*size).map(|i| {
            let mut branch = ctx.clone();
            branch
                .env
                .push(("KONDATE_PARALLEL_FORK_INDEX".into(), i.to_string()));
            branch
                .env
                .push(("KONDATE_PARALLEL_FORK_SIZE".into(), size.to_string()));
            block(&n.children, branch, &format!("{prefix}L{}#{i}/", n.line), o)
        })),
        Task::Retry {
            count,
            sleep_seconds,
            backoff,
        } => {
            for attempt in 0..=*count {
                let at = format!("{prefix}L{}@{attempt}/", n.line);
                match block(&n.children, ctx.clone(), &at, o) {
                    Walk::Failed { key, message } => {
                        if attempt == *count {
                            return Walk::Failed { key, message };
                        }
                    }
                    other => return other,
                }
                let seconds = match backoff {
                    Backoff::Fixed => *sleep_seconds,
                    Backoff::Exponential => sleep_seconds.saturating_mul(1 << attempt.min(20)),
                };
                if seconds == 0 {
                    continue;
                }
                let wait = StepSpec {
                    key: format!("{at}sleep"),
                    line: 0,
                    task: Task::Sleep(seconds),
                    env: ctx.env.clone(),
                    queue: ctx.queue.clone(),
                    timeout_minutes: None,
                };
                match step(wait, o) {
                    Walk::Done => {}
                    other => return other,
                }
            }
            unreachable!("the last attempt returns")
        }
        // Settings outside a block (not reached: `block` reads them).
        Task::Env(_)
        | Task::Queue(_)
        | Task::Timeout(_)
        | Task::AutoSkipError(_)
        | Task::ExpectedTime(_) => block(&n.children, ctx.clone(), prefix, o),
        leaf => {
            let spec = StepSpec {
                key: format!("{prefix}L{}", n.line),
                line: n.line,
                task: leaf.clone(),
                env: ctx.env.clone(),
                queue: ctx.queue.clone(),
                timeout_minutes: ctx.timeout,
            };
            match step(spec, o) {
                // A leaf's children (kuroko2 allows them under any task) follow it.
                Walk::Done if !n.children.is_empty() => block(&n.children, ctx.clone(), prefix, o),
                other => other,
            }
        }
    }
}

fn step(spec: StepSpec, o: &HashMap<String, Outcome>) -> Walk {
    match o.get(&spec.key) {
        None => Walk::Waiting(vec![spec]),
        Some(Outcome::Pending | Outcome::Working) => Walk::Waiting(Vec::new()),
        Some(Outcome::Success | Outcome::Skipped) => Walk::Done,
        Some(Outcome::Error(message)) => Walk::Failed {
            key: spec.key,
            message: message.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse;

    /// Walk `script`, and each time mark the steps it asks for with what `decide` says,
    /// until it is done or failed; the keys in the order they were asked for, by round.
    fn run(script: &str, decide: impl Fn(&StepSpec) -> Outcome) -> (Vec<Vec<StepSpec>>, Walk) {
        let tree = parse(script).unwrap();
        let mut o = HashMap::new();
        let mut rounds = Vec::new();
        for _ in 0..100 {
            match walk(&tree, &o) {
                Walk::Waiting(specs) => {
                    assert!(!specs.is_empty(), "waiting on nothing");
                    for s in &specs {
                        assert!(
                            o.insert(s.key.clone(), decide(s)).is_none(),
                            "{} asked for twice",
                            s.key
                        );
                    }
                    rounds.push(specs);
                }
                end => return (rounds, end),
            }
        }
        panic!("no end");
    }

    fn keys(rounds: &[Vec<StepSpec>]) -> Vec<Vec<&str>> {
        rounds
            .iter()
            .map(|r| r.iter().map(|s| s.key.as_str()).collect())
            .collect()
    }

    fn var<'a>(s: &'a StepSpec, k: &str) -> Option<&'a str> {
        s.env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_sequence_runs_step_by_step_and_stops_at_a_failure() {
        let script = "execute: a\nsequence:\n  execute: b\n  execute: c\nexecute: d\n";
        let (rounds, end) = run(script, |_| Outcome::Success);
        assert_eq!(keys(&rounds), [["L1"], ["L3"], ["L4"], ["L5"]]);
        assert_eq!(end, Walk::Done);
        let (rounds, end) = run(script, |s| {
            if s.key == "L3" {
                Outcome::Error("exit 1".into())
            } else {
                Outcome::Success
            }
        });
        assert_eq!(keys(&rounds), [["L1"], ["L3"]]);
        assert_eq!(
            end,
            Walk::Failed {
                key: "L3".into(),
                message: "exit 1".into()
            }
        );
    }

    #[test]
    fn env_queue_and_timeout_stay_in_their_block() {
        let script = "\
env: A=1
timeout: 5
fork:
  sequence:
    env: A=2 B=x
    queue: gpu
    execute: in_branch
  execute: other_branch
execute: after
";
        let (rounds, _) = run(script, |_| Outcome::Success);
        let all: Vec<&StepSpec> = rounds.iter().flatten().collect();
        let by = |k: &str| *all.iter().find(|s| s.key == k).unwrap();
        let branch = by("L7");
        assert_eq!((var(branch, "A"), var(branch, "B")), (Some("2"), Some("x")));
        assert_eq!(
            (branch.queue.as_str(), branch.timeout_minutes),
            ("gpu", Some(5))
        );
        let other = by("L8");
        assert_eq!((var(other, "A"), var(other, "B")), (Some("1"), None));
        assert_eq!(other.queue, DEFAULT_QUEUE);
        // Nothing leaks out of the fork.
        let after = by("L9");
        assert_eq!((var(after, "A"), var(after, "B")), (Some("1"), None));
        assert_eq!(
            (after.queue.as_str(), after.timeout_minutes),
            ("default", Some(5))
        );
        // Both branches were asked for at once.
        assert_eq!(keys(&rounds)[0], ["L7", "L8"]);
    }

    #[test]
    fn an_env_with_children_scopes_them() {
        let script = "env: A=1\n  execute: inside\nexecute: outside\n";
        let (rounds, _) = run(script, |_| Outcome::Success);
        // `env` also sets the variable for the rest of its block (kuroko2's context).
        assert_eq!(var(&rounds[0][0], "A"), Some("1"));
        assert_eq!(var(&rounds[1][0], "A"), Some("1"));
        let script = "sequence:\n  env: A=1\n  execute: inside\nexecute: outside\n";
        let (rounds, _) = run(script, |_| Outcome::Success);
        assert_eq!(var(&rounds[1][0], "A"), None);
    }

    #[test]
    fn parallel_fork_runs_its_block_n_times_with_index_and_size() {
        let script = "parallel_fork: 3\n  execute: shard\n  execute: merge\nexecute: done\n";
        let (rounds, end) = run(script, |_| Outcome::Success);
        assert_eq!(
            keys(&rounds),
            vec![
                vec!["L1#0/L2", "L1#1/L2", "L1#2/L2"],
                vec!["L1#0/L3", "L1#1/L3", "L1#2/L3"],
                vec!["L4"],
            ]
        );
        for (i, s) in rounds[0].iter().enumerate() {
            assert_eq!(
                var(s, "KONDATE_PARALLEL_FORK_INDEX"),
                Some(i.to_string().as_str())
            );
            assert_eq!(var(s, "KONDATE_PARALLEL_FORK_SIZE"), Some("3"));
        }
        assert_eq!(var(&rounds[2][0], "KONDATE_PARALLEL_FORK_INDEX"), None);
        assert_eq!(end, Walk::Done);
    }

    #[test]
    fn a_fork_fails_only_when_its_other_branches_are_done() {
        let tree = parse("fork:\n  execute: a\n  execute: b\nexecute: c\n").unwrap();
        let mut o = HashMap::new();
        o.insert("L2".to_string(), Outcome::Error("boom".into()));
        o.insert("L3".to_string(), Outcome::Working);
        assert_eq!(walk(&tree, &o), Walk::Waiting(Vec::new()));
        o.insert("L3".to_string(), Outcome::Success);
        assert!(matches!(walk(&tree, &o), Walk::Failed { key, .. } if key == "L2"));
        // Skipped by an operator: the script goes on after it.
        o.insert("L2".to_string(), Outcome::Skipped);
        assert!(matches!(walk(&tree, &o), Walk::Waiting(v) if v[0].key == "L4"));
    }

    #[test]
    fn retry_runs_attempts_with_their_own_keys_and_waits_between() {
        let script =
            "retry: count=2 sleep_time=10 backoff=exponential\n  execute: flaky\nexecute: next\n";
        // Fails twice, then succeeds.
        let (rounds, end) = run(script, |s| {
            if s.key.starts_with("L1@0/L2") || s.key.starts_with("L1@1/L2") {
                Outcome::Error("exit 1".into())
            } else {
                Outcome::Success
            }
        });
        assert_eq!(
            keys(&rounds),
            [
                ["L1@0/L2"],
                ["L1@0/sleep"],
                ["L1@1/L2"],
                ["L1@1/sleep"],
                ["L1@2/L2"],
                ["L3"]
            ]
        );
        assert_eq!(rounds[1][0].task, Task::Sleep(10));
        assert_eq!(rounds[3][0].task, Task::Sleep(20));
        assert_eq!(end, Walk::Done);
        // Always failing: the last attempt's failure is the instance's.
        let (rounds, end) = run(script, |s| {
            if s.key.ends_with("L2") {
                Outcome::Error("exit 1".into())
            } else {
                Outcome::Success
            }
        });
        assert_eq!(rounds.len(), 5);
        assert!(matches!(end, Walk::Failed { key, .. } if key == "L1@2/L2"));
    }

    #[test]
    fn auto_skip_error_goes_on_after_a_failed_step() {
        let script = "execute: a\nauto_skip_error: true\nexecute: b\nexecute: c\n";
        let (rounds, end) = run(script, |s| {
            if s.key == "L3" {
                Outcome::Error("exit 1".into())
            } else {
                Outcome::Success
            }
        });
        assert_eq!(keys(&rounds), [["L1"], ["L3"], ["L4"]]);
        assert_eq!(end, Walk::Done);
        // Before it is said, a failure stops the script.
        let (_, end) = run(script, |s| {
            if s.key == "L1" {
                Outcome::Error("exit 1".into())
            } else {
                Outcome::Success
            }
        });
        assert!(matches!(end, Walk::Failed { .. }));
    }

    #[test]
    fn every_leaf_is_a_step_and_an_empty_script_is_done() {
        let script = "noop:\necho: hi\nsleep: 1\napp: train --epochs 3\nlabels_sync: tags\n\
                      results_export: scores\nsub_process: other\nwait: other/daily\n";
        let (rounds, end) = run(script, |_| Outcome::Success);
        assert_eq!(rounds.len(), 8);
        assert_eq!(end, Walk::Done);
        assert_eq!(
            walk(&parse("# nothing\n").unwrap(), &HashMap::new()),
            Walk::Done
        );
    }
}
