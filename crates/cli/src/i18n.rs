//! Message catalogues: every user-facing line comes from `i18n/<lang>.txt`,
//! Vietnamese by default. A key missing from a catalogue falls back to
//! English, then to the key itself, so a gap shows up as text, not a crash.

use std::collections::HashMap;
use std::sync::OnceLock;

const VI: &str = include_str!("../i18n/vi.txt");
const EN: &str = include_str!("../i18n/en.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Vi,
    En,
}

struct Catalogues {
    lang: Lang,
    vi: HashMap<&'static str, &'static str>,
    en: HashMap<&'static str, &'static str>,
}

static CATALOGUES: OnceLock<Catalogues> = OnceLock::new();

fn parse(text: &'static str) -> HashMap<&'static str, &'static str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// Chooses the language once, at start-up.
pub fn init(lang: Lang) {
    let _ = CATALOGUES.set(Catalogues {
        lang,
        vi: parse(VI),
        en: parse(EN),
    });
}

/// The message `key` with `{name}` placeholders replaced.
pub fn t(key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let cats = CATALOGUES.get_or_init(|| Catalogues {
        lang: Lang::Vi,
        vi: parse(VI),
        en: parse(EN),
    });
    let primary = match cats.lang {
        Lang::Vi => &cats.vi,
        Lang::En => &cats.en,
    };
    let template = primary
        .get(key)
        .or_else(|| cats.en.get(key))
        .copied()
        .unwrap_or(key);
    // `\n` in a catalogue line is a line break.
    let mut out = template.replace("\\n", "\n");
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), &value.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_have_the_same_keys() {
        let vi = parse(VI);
        let en = parse(EN);
        let mut missing: Vec<_> = en.keys().filter(|k| !vi.contains_key(*k)).collect();
        missing.extend(vi.keys().filter(|k| !en.contains_key(*k)));
        assert!(
            missing.is_empty(),
            "keys in one catalogue only: {missing:?}"
        );
    }

    #[test]
    fn placeholders_are_filled() {
        let en = parse(EN);
        let template = en.get("search.none").copied().unwrap_or_default();
        assert!(template.contains("{query}"));
    }
}
