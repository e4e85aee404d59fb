//! The tracer registry: named tracers as argv templates with variables, in a TOML file
//! (scalpels' `tracer` table and `setup` config, as one file an operator edits).
//!
//! ```toml
//! [vars]                     # defaults; `trace-agent start --var k=v` overrides them
//! dev = "lo"
//!
//! [tracers.traffic]          # prints trace records itself
//! argv = ["netdev-trace", "--dev", "{dev}", "--interval", "{interval}"]
//!
//! [tracers.oslolock]         # prints lines: wrapped in `line-stamp --parse count`
//! argv = ["stap", "oslo-lock.stp"]
//! parse = "count"
//! series = "lock"            # optional, as line-stamp's --series and --unit
//! unit = "count"
//! ```
//!
//! `{name}` in an argument is a variable: the start's `--var`, else `[vars]`, else one of the
//! built-ins `{task}`, `{tracer}` and `{dir}` (the agent's data directory). `{{` and `}}`
//! are literal braces. A variable with no value is an error naming it, at start, so a
//! tracer never runs with a hole in its command line. The file is read again at every
//! start: an edit needs no restart.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::stamp::Parse;

/// The registry shipped with measpipe, used when the data directory has no `tracers.toml`.
pub const BUILTIN: &str = include_str!("../../../pipelines/tracers.toml");

/// The tracers an agent can start.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Default values of the variables.
    pub vars: BTreeMap<String, String>,
    /// The tracers by name.
    pub tracers: BTreeMap<String, Tracer>,
}

/// One named tracer.
#[derive(Debug, Clone)]
pub struct Tracer {
    /// The command line, each argument a template.
    pub argv: Vec<String>,
    /// How to read its lines when it prints lines rather than trace records.
    pub parse: Option<Parse>,
    /// The series of its records (with `parse`).
    pub series: Option<String>,
    /// The unit of its records (with `parse`).
    pub unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    tracers: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    argv: Vec<String>,
    parse: Option<String>,
    series: Option<String>,
    unit: Option<String>,
}

impl Registry {
    /// Parses a registry; `name` (the file) starts every error, with the line of the fault.
    pub fn parse(text: &str, name: &str) -> Result<Registry, String> {
        let file: File = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let cause = e.message().trim_end().replace('\n', "; ");
            match line {
                Some(line) => format!("{name}:{line}: {cause}"),
                None => format!("{name}: {cause}"),
            }
        })?;
        let mut tracers = BTreeMap::new();
        for (tracer, entry) in file.tracers {
            let fault = |cause: String| format!("{name}: tracer {tracer:?}: {cause}");
            if !valid_name(&tracer) {
                return Err(fault(
                    "a tracer name is letters, digits, '-', '_' and '.'".into(),
                ));
            }
            if entry.argv.is_empty() {
                return Err(fault("argv is empty".into()));
            }
            for arg in &entry.argv {
                expand(arg, |_| Some("")).map_err(fault)?;
            }
            let parse = match entry.parse.as_deref() {
                None => None,
                Some(p) => Some(Parse::from_name(p).ok_or_else(|| {
                    let names: Vec<_> = Parse::NAMES.iter().map(|(_, n)| *n).collect();
                    fault(format!("parse {p:?} is not one of {}", names.join(", ")))
                })?),
            };
            if parse.is_none() && (entry.series.is_some() || entry.unit.is_some()) {
                return Err(fault("series and unit need a parse".into()));
            }
            let spec = Tracer {
                argv: entry.argv,
                parse,
                series: entry.series,
                unit: entry.unit,
            };
            tracers.insert(tracer, spec);
        }
        Ok(Registry {
            vars: file.vars,
            tracers,
        })
    }

    /// The tracer called `name`, or an error listing the ones there are.
    pub fn tracer(&self, name: &str) -> Result<&Tracer, String> {
        self.tracers.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.tracers.keys().map(String::as_str).collect();
            format!(
                "no tracer {name:?} in the registry (it has: {})",
                known.join(", ")
            )
        })
    }

    /// Tracer `name`'s command line with every variable filled in: from `vars`, then the
    /// registry's defaults, then `builtins`.
    pub fn command(
        &self,
        name: &str,
        vars: &BTreeMap<String, String>,
        builtins: &[(&str, &str)],
    ) -> Result<Vec<String>, String> {
        let tracer = self.tracer(name)?;
        let lookup = |var: &str| {
            vars.get(var)
                .or_else(|| self.vars.get(var))
                .map(String::as_str)
                .or_else(|| builtins.iter().find(|(k, _)| *k == var).map(|(_, v)| *v))
        };
        tracer
            .argv
            .iter()
            .map(|arg| expand(arg, lookup).map_err(|cause| format!("tracer {name:?}: {cause}")))
            .collect()
    }
}

/// A name that is safe in a file name, a table and a message.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Fills the `{var}`s of `template` from `lookup`.
pub fn expand<'a>(
    template: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let brace = rest.as_bytes()[at];
        rest = &rest[at + 1..];
        if rest.as_bytes().first() == Some(&brace) {
            out.push(brace as char);
            rest = &rest[1..];
            continue;
        }
        if brace == b'}' {
            return Err(format!(
                "a lone '}}' in {template:?} (write '}}}}' for a brace)"
            ));
        }
        let end = rest
            .find('}')
            .ok_or_else(|| format!("an unclosed '{{' in {template:?}"))?;
        let var = &rest[..end];
        if !valid_name(var) {
            return Err(format!(
                "{{{var}}} in {template:?} is not a variable name (write '{{{{' for a brace)"
            ));
        }
        let value = lookup(var).ok_or_else(|| {
            format!("variable {var:?} has no value (give it with --var {var}=VALUE)")
        })?;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_name_what_is_missing() {
        let look = |v: &str| (v == "dev").then_some("lo");
        assert_eq!(expand("--dev={dev}", look).unwrap(), "--dev=lo");
        assert_eq!(expand("{{x}} {dev}", look).unwrap(), "{x} lo");
        assert_eq!(
            expand("{port}", look).unwrap_err(),
            "variable \"port\" has no value (give it with --var port=VALUE)"
        );
        assert_eq!(
            expand("a}b", look).unwrap_err(),
            "a lone '}' in \"a}b\" (write '}}' for a brace)"
        );
        assert_eq!(
            expand("{dev", look).unwrap_err(),
            "an unclosed '{' in \"{dev\""
        );
    }

    #[test]
    fn a_bad_file_names_its_line() {
        let text = "[vars]\ndev = \"lo\"\n[tracers.x]\nargv = [\"a\"]\nparse = \"counts\"\n";
        assert_eq!(
            Registry::parse(text, "r.toml").unwrap_err(),
            "r.toml: tracer \"x\": parse \"counts\" is not one of count, number, json, raw, perf-stat, pidstat"
        );
        let text = "[tracers.x]\nargv = [\"a\"]\nargs = 1\n";
        let err = Registry::parse(text, "r.toml").unwrap_err();
        assert!(err.starts_with("r.toml:3: unknown field `args`"), "{err}");
    }

    #[test]
    fn the_builtin_registry_parses() {
        let registry = Registry::parse(BUILTIN, "builtin").unwrap();
        let cmd = registry
            .command("traffic", &BTreeMap::new(), &[("task", "t")])
            .unwrap();
        assert_eq!(cmd[0], "netdev-trace");
    }

    proptest::proptest! {
        /// Any template: filled or refused with a message, never a panic; text without
        /// braces comes back unchanged.
        #[test]
        fn any_template_expands_or_is_refused(t in "\\PC*", plain in "[^{}]*") {
            let _ = expand(&t, |_| Some("v"));
            proptest::prop_assert_eq!(expand(&plain, |_| None).unwrap(), plain);
        }

        /// Any registry text: parsed or refused, never a panic.
        #[test]
        fn any_registry_parses_or_is_refused(t in "\\PC*") {
            let _ = Registry::parse(&t, "r.toml");
        }
    }
}
