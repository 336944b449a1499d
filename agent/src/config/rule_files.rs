//! The one rule-file loader: `weir run`, `weir check`, reloads, `weir replay` and `weir eval`
//! all read and compile rule files here, so a problem (a YAML error, a rule name defined in
//! two files, an unreadable file) is reported the same way whichever command meets it.
//!
//! `weir-rules` only parses strings; reading the files is this module's job. Each file is
//! compiled on its own: a running gateway must not stop because a field engineer saved a
//! broken rule file (guarantee 4), so `run` logs every problem of a bad file with
//! `file:line:column`, skips that file and runs the others. `check`, `replay` and `eval`
//! report the same problems and refuse to go on ([`Outcome::all_or_nothing`]).

use std::path::{Path, PathBuf};

use weir_rules::{RuleError, RuleSet};

use crate::config::{Loaded, Problem, RuleFile};

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

impl Outcome {
    /// The rules when every file loaded, else every problem of every file, one per line (what
    /// `check`, `replay` and `eval` print before exiting 2).
    pub fn all_or_nothing(self) -> Result<RuleSet, Vec<String>> {
        if self.rejected.is_empty() {
            Ok(self.rules)
        } else {
            Err(self.rejected.into_iter().flat_map(|r| r.problems).collect())
        }
    }
}

/// The rule files a config names (`run`, `check`, reloads).
pub fn load(loaded: &Loaded) -> Outcome {
    compile(loaded.rule_files())
}

/// The rule files of the fleet version the gateway runs, when `fleet:` is configured and a
/// bundle has been applied: they replace the config's `rules:` list (`run`, `check` and
/// reloads all see the same set).
pub fn fleet_version(loaded: &Loaded) -> Option<Vec<Result<RuleFile, Problem>>> {
    let fleet = loaded.config.fleet.as_ref()?;
    let files = crate::fleet::Store::new(&fleet.dir).current_rule_files()?;
    Some(files.iter().map(|p| read(p)).collect())
}

/// Compiles rule files already in memory (a fleet bundle being validated), exactly as
/// [`load`] compiles the files a config names.
pub fn load_files(files: Vec<RuleFile>) -> Outcome {
    compile(files.into_iter().map(Ok))
}

/// The rule files given on the command line (`replay`, `eval`).
pub fn load_paths(paths: &[PathBuf]) -> Outcome {
    compile(paths.iter().map(|p| read(p)))
}

/// Reads one rule file; the problem when it cannot be read.
pub fn read(path: &Path) -> Result<RuleFile, Problem> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(RuleFile { name, text }),
        Err(e) => Err(Problem::unlocated(
            name,
            format!("cannot read rule file: {e}"),
        )),
    }
}

/// Compiles rule files one by one into one set; a file with a problem is left out whole.
pub fn compile(files: impl IntoIterator<Item = Result<RuleFile, Problem>>) -> Outcome {
    let mut rules = RuleSet::default();
    let mut files_loaded = 0;
    let mut rejected = Vec::new();
    for file in files {
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
        // Rule names are unique across files: a file repeating a name is rejected as a whole
        // (with the engine's own `file:line:col: … duplicate rule name (first defined at …)`),
        // which keeps the first definition running.
        // Baseline files (`baseline: <file>`) are relative to the rule file.
        let dir = Path::new(&file.name)
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let merged = RuleSet::parse_str(&file.text, &file.name)
            .and_then(|mut set| {
                set.attach_baselines(&dir, &mut |p| std::fs::read_to_string(p))?;
                Ok(set)
            })
            .and_then(|set| RuleSet::merge(vec![rules.clone(), set]));
        match merged {
            Ok(set) => {
                rules = set;
                files_loaded += 1;
            }
            Err(e) => rejected.push(Rejected {
                file: file.name,
                problems: diagnostics(&e),
            }),
        }
    }
    Outcome {
        rules,
        files_loaded,
        rejected,
    }
}

fn diagnostics(e: &RuleError) -> Vec<String> {
    e.diagnostics.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str =
        "rules:\n  - name: shared\n    window: { tumbling: 1s }\n    aggregates: [count]\n";
    const TWO: &str = "rules:\n  - name: own\n    window: { tumbling: 1s }\n    aggregates: [count]\n  - name: shared\n    window: { tumbling: 1s }\n    aggregates: [count]\n";
    const BAD: &str = "rules:\n  - name: x\n    window: { tumbling: 1 }\n    aggregates: [count]\n";

    /// `run`/`check` (through a config) and `replay`/`eval` (through paths) used to report a
    /// rule name defined in two files differently; now one loader reports it for all.
    #[test]
    fn a_duplicate_rule_name_is_reported_alike_by_run_check_replay_and_eval() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.yaml");
        let two = dir.path().join("two.yaml");
        std::fs::write(&one, ONE).unwrap();
        std::fs::write(&two, TWO).unwrap();
        let config = dir.path().join("weir.yaml");
        std::fs::write(
            &config,
            "gateway_id: gw\nrules: [one.yaml, two.yaml]\nsources: [{simulator: {}}]\n",
        )
        .unwrap();
        let loaded = Loaded::from_path(&config).unwrap();

        let from_config = load(&loaded);
        let from_paths = load_paths(&[one.clone(), two.clone()]);
        assert_eq!(from_config.files_loaded, 1, "the first file keeps running");
        assert_eq!(from_config.rules.len(), 1);
        let expected = vec![format!(
            "{}:5:11: rule `shared`: duplicate rule name (first defined at {}:2:11)",
            two.display(),
            one.display()
        )];
        assert_eq!(from_config.rejected.len(), 1);
        assert_eq!(from_config.rejected[0].problems, expected);
        assert_eq!(from_paths.all_or_nothing().unwrap_err(), expected);
        assert_eq!(from_config.all_or_nothing().unwrap_err(), expected);
    }

    #[test]
    fn every_problem_of_every_file_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.yaml");
        let bad = dir.path().join("bad.yaml");
        let missing = dir.path().join("missing.yaml");
        std::fs::write(&one, ONE).unwrap();
        std::fs::write(&bad, BAD).unwrap();
        let outcome = load_paths(&[one.clone(), bad.clone(), missing.clone()]);
        assert_eq!(outcome.files_loaded, 1);
        let lines = outcome.all_or_nothing().unwrap_err();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with(&format!(
            "{}:3:25: rule `x`: invalid duration",
            bad.display()
        )));
        assert!(lines[1].starts_with(&format!("{}: cannot read rule file", missing.display())));

        let fine = load_paths(std::slice::from_ref(&one));
        assert_eq!(fine.all_or_nothing().unwrap().len(), 1);
    }
}
