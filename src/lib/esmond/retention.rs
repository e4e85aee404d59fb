//! Retention by policy: how long each series' points are kept, chosen by rules on the
//! series' event type and summary and on its metadata's tool and endpoints.
//!
//! A rule is `FIELD=VALUE[,FIELD=VALUE...]:DAYS` (or `:forever`); every condition must
//! hold (exact text). The first rule that matches a series decides; a series no rule
//! matches keeps the default (`--retention DAYS`), or everything when there is none. A
//! pScheduler run is kept as long as the longest-kept series of its metadata; refusals as
//! long as the default.

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The series' event type (`throughput`, `packet-trace`, ...).
    EventType,
    /// The series' summary type (`base`, `aggregation`, `statistics`, `average`).
    SummaryType,
    /// The metadata's fields by their API names.
    SubjectType,
    Source,
    Destination,
    MeasurementAgent,
    ToolName,
    InputSource,
    InputDestination,
}

impl Field {
    /// Every field, with its API name.
    pub const ALL: [(Field, &'static str); 9] = [
        (Field::EventType, "event-type"),
        (Field::SummaryType, "summary-type"),
        (Field::SubjectType, "subject-type"),
        (Field::Source, "source"),
        (Field::Destination, "destination"),
        (Field::MeasurementAgent, "measurement-agent"),
        (Field::ToolName, "tool-name"),
        (Field::InputSource, "input-source"),
        (Field::InputDestination, "input-destination"),
    ];
}

/// One rule: conditions, and the days a matching series is kept (`None`: forever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Every one must hold.
    pub conditions: Vec<(Field, String)>,
    /// Days kept; `None` keeps everything.
    pub days: Option<u64>,
}

impl Rule {
    /// Parses `FIELD=VALUE[,FIELD=VALUE...]:DAYS` (DAYS a whole number or `forever`).
    pub fn parse(text: &str) -> Result<Rule, String> {
        let (conditions, days) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?}: expected FIELD=VALUE[,...]:DAYS"))?;
        let days = match days.trim() {
            "forever" => None,
            n => Some(
                n.parse::<u64>()
                    .ok()
                    .filter(|d| *d <= 1_000_000)
                    .ok_or_else(|| {
                        format!("{text:?}: {n:?} is not a number of days or \"forever\"")
                    })?,
            ),
        };
        let conditions = conditions
            .split(',')
            .map(|condition| {
                let (name, value) = condition
                    .split_once('=')
                    .ok_or_else(|| format!("{text:?}: {condition:?} is not FIELD=VALUE"))?;
                let field = Field::ALL
                    .iter()
                    .find(|(_, known)| *known == name.trim())
                    .map(|(field, _)| *field)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Field::ALL.iter().map(|f| f.1).collect();
                        format!(
                            "{text:?}: unknown field {name:?} (one of {})",
                            names.join(", ")
                        )
                    })?;
                Ok((field, value.trim().to_owned()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Rule { conditions, days })
    }
}

/// The rules, then the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// In order: the first that matches decides.
    pub rules: Vec<Rule>,
    /// Days a series no rule matches is kept (`None`: forever).
    pub default_days: Option<u64>,
}

impl Policy {
    /// Whether the policy ever deletes anything.
    pub fn deletes(&self) -> bool {
        self.default_days.is_some() || self.rules.iter().any(|r| r.days.is_some())
    }

    /// Days a series is kept (`None`: forever); `field` gives its fields' values.
    pub fn days<'v>(&self, field: impl Fn(Field) -> &'v str) -> Option<u64> {
        self.rules
            .iter()
            .find(|rule| rule.conditions.iter().all(|(f, value)| field(*f) == value))
            .map_or(self.default_days, |rule| rule.days)
    }

    /// One line for the log: what is kept how long.
    pub fn describe(&self) -> String {
        let days = |d: Option<u64>| d.map_or_else(|| "forever".to_owned(), |d| format!("{d} days"));
        let mut parts: Vec<String> = self
            .rules
            .iter()
            .map(|rule| {
                let conditions: Vec<String> = rule
                    .conditions
                    .iter()
                    .map(|(field, value)| {
                        let name = Field::ALL
                            .iter()
                            .find(|f| f.0 == *field)
                            .map_or("?", |f| f.1);
                        format!("{name}={value}")
                    })
                    .collect();
                format!("{}: {}", conditions.join(","), days(rule.days))
            })
            .collect();
        parts.push(format!("everything else: {}", days(self.default_days)));
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_the_first_match_decides() {
        let policy = Policy {
            rules: vec![
                Rule::parse("tool-name=pscheduler/iperf3,source=10.0.0.1:forever").unwrap(),
                Rule::parse("event-type=packet-trace:7").unwrap(),
                Rule::parse("tool-name=pscheduler/iperf3:365").unwrap(),
            ],
            default_days: Some(30),
        };
        let series = |event: &'static str, tool: &'static str, source: &'static str| {
            move |field: Field| match field {
                Field::EventType => event,
                Field::ToolName => tool,
                Field::Source => source,
                _ => "",
            }
        };
        assert_eq!(
            policy.days(series("throughput", "pscheduler/iperf3", "10.0.0.1")),
            None
        );
        assert_eq!(
            policy.days(series("packet-trace", "pscheduler/iperf3", "10.0.0.1")),
            None
        );
        assert_eq!(
            policy.days(series("packet-trace", "pscheduler/tracepath", "10.0.0.2")),
            Some(7)
        );
        assert_eq!(
            policy.days(series("throughput", "pscheduler/iperf3", "10.0.0.2")),
            Some(365)
        );
        assert_eq!(
            policy.days(series("throughput", "bwctl/iperf3", "10.0.0.2")),
            Some(30)
        );
        assert_eq!(
            policy.describe(),
            "tool-name=pscheduler/iperf3,source=10.0.0.1: forever; event-type=packet-trace: 7 days; tool-name=pscheduler/iperf3: 365 days; everything else: 30 days"
        );
    }

    #[test]
    fn an_ipv6_value_keeps_its_colons() {
        assert_eq!(
            Rule::parse("source=2001:db8::1:30").unwrap(),
            Rule {
                conditions: vec![(Field::Source, "2001:db8::1".into())],
                days: Some(30)
            }
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!(
            Rule::parse("event-type=x").unwrap_err(),
            r#""event-type=x": expected FIELD=VALUE[,...]:DAYS"#
        );
        assert_eq!(
            Rule::parse("event-type=x:soon").unwrap_err(),
            r#""event-type=x:soon": "soon" is not a number of days or "forever""#
        );
        assert_eq!(
            Rule::parse("tool=x:3").unwrap_err(),
            r#""tool=x:3": unknown field "tool" (one of event-type, summary-type, subject-type, source, destination, measurement-agent, tool-name, input-source, input-destination)"#
        );
        assert_eq!(
            Rule::parse("tool-name:3").unwrap_err(),
            r#""tool-name:3": "tool-name" is not FIELD=VALUE"#
        );
    }
}
