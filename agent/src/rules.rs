//! Loading the config's rule files: all-or-nothing for `weir check`, best-effort for `run`.
//!
//! A running gateway must not stop because a field engineer saved a broken rule file
//! (guarantee 4), so `run` compiles each file on its own, logs every problem of a bad file
//! with `file:line:column`, skips that file and runs the others. `check` reports the same
//! problems and fails, so a deploy can refuse a broken file before it reaches a gateway.

use std::collections::HashMap;

use weir_rules::{RuleError, RuleSet};

use crate::config::Loaded;

/// A rule file that was not loaded, and why (one line per problem).
#[derive(Debug)]
pub struct Rejected {
    pub file: String,
    pub problems: Vec<String>,
}

/// The rules that loaded, and the files that did not.
pub struct Outcome {
    pub rules: RuleSet,
    pub files_loaded: usize,
    pub rejected: Vec<Rejected>,
}

pub fn load(loaded: &Loaded) -> Outcome {
    let mut sets = Vec::new();
    let mut rejected = Vec::new();
    // Rule names are unique across files; a file repeating a name is rejected as a whole,
    // which keeps the first definition running.
    let mut defined_in: HashMap<String, String> = HashMap::new();
    for file in loaded.rule_files() {
        let file = match file {
            Ok(f) => f,
            Err(problem) => {
                rejected.push(Rejected {
                    file: problem.file.clone(),
                    problems: vec![problem.to_string()],
                });
                continue;
            }
        };
        // Baseline files (`baseline: <file>`) are relative to the rule file.
        let dir = std::path::Path::new(&file.name)
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        let parsed = RuleSet::parse_str(&file.text, &file.name).and_then(|mut set| {
            set.attach_baselines(&dir)?;
            Ok(set)
        });
        match parsed {
            Ok(set) => {
                let clashes: Vec<String> = set
                    .names()
                    .filter_map(|n| {
                        defined_in.get(n).map(|other| {
                            format!("{}: rule `{n}` is already defined in {other}", file.name)
                        })
                    })
                    .collect();
                if clashes.is_empty() {
                    for n in set.names() {
                        defined_in.insert(n.to_owned(), file.name.clone());
                    }
                    sets.push(set);
                } else {
                    rejected.push(Rejected {
                        file: file.name,
                        problems: clashes,
                    });
                }
            }
            Err(e) => rejected.push(Rejected {
                file: file.name,
                problems: diagnostics(&e),
            }),
        }
    }
    let files_loaded = sets.len();
    let rules = match RuleSet::merge(sets) {
        Ok(set) => set,
        Err(e) => {
            // Names were checked above, so this is a bug, not a user error; run no rules
            // rather than stop the agent, and say so loudly.
            rejected.push(Rejected {
                file: "<all rule files>".to_owned(),
                problems: diagnostics(&e),
            });
            RuleSet::default()
        }
    };
    Outcome {
        rules,
        files_loaded,
        rejected,
    }
}

fn diagnostics(e: &RuleError) -> Vec<String> {
    e.diagnostics.iter().map(ToString::to_string).collect()
}
